"""``rlsizer`` command line: subcommands are discovered in ``rlsizer.commands``.

Every module there exposing ``register(subparsers) -> None`` adds its own parser
and sets ``func=callable(args, settings) -> int``; nothing here names them, so a
new command is a new module. Settings are read once, from ``RLSIZER_*``.
Configuration and start-up errors print one line to stderr and exit 2; operational errors (a bad
model name, an unreachable broker, a refused model, a bad path) one line and exit 1. One-shot
commands silence librdkafka's own log (thousands of "Connect ... failed" lines while a broker is
down) unless ``RLSIZER_KAFKA_LOG_LEVEL`` is set; services (``kafka_logs=True``) keep it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

import rlsizer.commands
from config.settings import ENV_PREFIX, Settings, SettingsError
from rlsizer.stack.processes import StackError
from streams.dir_lock import DirInUse

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
KAFKA_LOG_ENV = f"{ENV_PREFIX}KAFKA_LOG_LEVEL"
QUIET_KAFKA_LOG_LEVEL = 0  # librdkafka: emergencies only


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlsizer",
        description="Event-sourced position sizer for trading bots on Kafka. Configure with RLSIZER_* variables.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(rlsizer.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        name = f"{rlsizer.commands.__name__}.{info.name}"
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # one broken command must not take the others down
            print(f"rlsizer: command module {name} failed to load: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # SIGTERM unwinds like Ctrl-C, so every command's cleanup (finally blocks that stop
    # child processes) runs; commands with their own handlers (up, worker) replace it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings = Settings.from_env()
        if not getattr(args, "kafka_logs", False) and KAFKA_LOG_ENV not in os.environ:
            settings = replace(settings, kafka_log_level=QUIET_KAFKA_LOG_LEVEL)
        return int(func(args, settings) or 0)
    except (StackError, SettingsError, DirInUse) as exc:
        print(f"rlsizer {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rlsizer {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not isinstance(exc, _operational_errors()):
            raise  # a bug: the traceback is what a developer needs
        print(f"rlsizer {args.command}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _operational_errors() -> tuple[type[BaseException], ...]:
    """Errors a user acts on (a bad name, an unreachable broker, a refused model, a path that is a
    directory): one line on stderr, not a traceback. Imported only when one is raised."""
    from confluent_kafka import KafkaException  # lazy: keeps `rlsizer --help` fast

    from models.errors import ModelRegistryError  # lazy: keeps `rlsizer --help` fast
    from models.manifest import ManifestError  # lazy: keeps `rlsizer --help` fast
    from schemas.codec import RegistryUnavailable  # lazy: keeps `rlsizer --help` fast
    from trainer.warehouse.store import WarehouseError  # lazy: keeps `rlsizer --help` fast

    return (KafkaException, ModelRegistryError, ManifestError, RegistryUnavailable, WarehouseError, OSError)


def _one_line(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    text = getattr(error, "str", None)
    if callable(text):  # a KafkaError: its own text, not its repr
        return f"Kafka: {text()}"
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
