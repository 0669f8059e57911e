"""Subcommands of ``rlsizer``, one module each, found by ``rlsizer.cli``.

A command module exposes ``register(subparsers) -> None``, which adds a parser
with ``subparsers.add_parser(NAME, help=...)`` and sets
``func=callable(args: argparse.Namespace, settings: Settings) -> int`` (the exit
code) with ``set_defaults``. Raise ``StackError`` or ``SettingsError`` for a
clear one-line error (exit 2). Import heavy libraries inside ``func``, not at
module level, so ``rlsizer --help`` stays fast. A command that runs until stopped (a
service) sets ``kafka_logs=True`` too: it keeps librdkafka's own log, which one-shot
commands silence (``RLSIZER_KAFKA_LOG_LEVEL``) so that a failure is their one line.
"""
