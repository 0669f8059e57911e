"""Configuration every component may import: the frozen ``Settings`` read from ``RLSIZER_*`` and the
security part of each client's configuration derived from it. Depends on no other rlsizer package
(``schemas`` only when a ``Settings`` is built, to validate ``earliest_event_time``)."""
