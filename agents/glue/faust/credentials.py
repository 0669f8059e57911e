"""Faust's ``broker_credentials`` from ``Settings``: the same validated security as every other client
(``config.security``), in the form ``faust.App`` takes. Here, next to Faust, so ``config`` and ``streams``
never import it."""

from __future__ import annotations

from typing import Any

import faust

from config.security import kafka_security, ssl_context
from config.settings import Settings


def faust_broker_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for ``faust.App`` (``None`` for PLAINTEXT).

    Always passes an explicit TLS context for SSL/SASL_SSL: Faust decides between
    SASL_PLAINTEXT and SASL_SSL by whether a context is given, and its
    ``SSLCredentials()`` without one raises ``TypeError`` (faust-streaming 0.11).
    """
    sec = kafka_security(settings)
    if sec.protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if sec.uses_sasl:
        return faust.SASLCredentials(
            username=sec.username, password=sec.password, mechanism=sec.sasl_mechanism, ssl_context=context
        )
    return faust.SSLCredentials(context)
