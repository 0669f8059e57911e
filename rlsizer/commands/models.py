"""``rlsizer models list|show V|promote [V]|rollback``: the model registry from the command line.

``promote`` and ``rollback`` announce the new champion with a ``ModelPublished``
event on ``settings.topic("models")`` so workers swap at once (``--no-event`` skips
it; workers then see the change at their next poll). Exit codes: 0 done, 1 the
registry refused or a model failed verification, or the change was made but its
event could not be sent (the message says which).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from streams.settings import Settings

_METRICS_SHOWN = 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list, inspect, promote and roll back model versions")
    parser.add_argument("--name", default=None, help="model name (default: RLSIZER_MODEL_NAME)")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="versions with alias, creation time and key metrics").set_defaults(func=_run(_list))
    show = sub.add_parser("show", help="a version's manifest and whether it verifies")
    show.add_argument("version")
    show.set_defaults(func=_run(_show))
    promote = sub.add_parser("promote", help="make a version (default: the challenger) champion")
    promote.add_argument("version", nargs="?", default=None)
    promote.add_argument("--no-event", action="store_true", help="do not send ModelPublished to Kafka")
    promote.set_defaults(func=_run(_promote))
    rollback = sub.add_parser("rollback", help="make the previous champion champion again")
    rollback.add_argument("--no-event", action="store_true", help="do not send ModelPublished to Kafka")
    rollback.set_defaults(func=_run(_rollback))


def _run(action: Any) -> Any:
    def func(args: argparse.Namespace, settings: Settings) -> int:
        from dataclasses import replace

        from models.errors import ModelRegistryError
        from models.registry import ModelRegistry
        from models.signing import SigningKeyError

        if args.name:
            settings = replace(settings, model_name=args.name)
        try:
            registry = ModelRegistry.from_settings(settings)
            return int(action(registry, args, settings))
        except (ModelRegistryError, SigningKeyError) as exc:
            print(f"rlsizer models {args.models_command}: {exc}", file=sys.stderr)
            return 1

    return func


def _list(registry: Any, args: argparse.Namespace, settings: Settings) -> int:
    from models.aliases import ALIASES
    from models.errors import ModelVerificationError
    from models.manifest import format_ts

    aliases: dict[str, str | None] = {}
    for name in ALIASES:
        try:
            record = registry.alias(name)
        except ModelVerificationError as exc:  # shown, and the versions listed all the same
            print(f"{name} alias REFUSED ({exc.kind}): {exc.reason}", file=sys.stderr)
            record = None
        aliases[name] = None if record is None else record.version
    rows = [("VERSION", "ALIAS", "CREATED", "METRICS")]
    for version in registry.list_versions():
        named = ",".join(a for a, named_version in aliases.items() if named_version == version)
        try:
            manifest = registry.read_manifest(version)
        except ModelVerificationError as exc:
            rows.append((version, named or "-", "-", f"UNVERIFIED ({exc.kind})"))
            continue
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(manifest.metrics.items())[:_METRICS_SHOWN]) or "-"
        rows.append((version, named or "-", format_ts(manifest.created_at)[:19] + "Z", metrics))
    if len(rows) == 1:
        print(f"no versions of {registry.model_name} in s3://{settings.s3_bucket}")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    return 0


def _show(registry: Any, args: argparse.Namespace, settings: Settings) -> int:
    status = registry.show(args.version)
    doc = status.manifest.to_dict() if status.manifest is not None else None
    print(json.dumps(doc, indent=2, sort_keys=True))
    print(f"aliases: {', '.join(status.aliases) or '-'}")
    print("verification: OK (signature and sha256)" if status.verified else f"verification: FAILED {status.problem}")
    return 0 if status.verified else 1


def _promote(registry: Any, args: argparse.Namespace, settings: Settings) -> int:
    from models.errors import ModelVerificationError

    try:
        before = registry.champion() or "-"
    except ModelVerificationError as exc:  # promoting a checked version is how a refused alias is replaced
        before = f"(alias refused: {exc.kind})"
    record = registry.promote(args.version)
    print(f"{registry.model_name} champion: {before} -> {record.version}")
    return _announce(registry, record.version, args, settings)


def _rollback(registry: Any, args: argparse.Namespace, settings: Settings) -> int:
    before = registry.champion()
    record = registry.rollback()
    print(f"{registry.model_name} champion rolled back: {before} -> {record.version}")
    return _announce(registry, record.version, args, settings)


def _announce(registry: Any, version: str, args: argparse.Namespace, settings: Settings) -> int:
    from models.aliases import CHAMPION
    from models.events import EventNotSent, KafkaModelEvents

    if args.no_event:
        return 0
    event = registry.alias_event(CHAMPION, version)
    try:
        KafkaModelEvents(settings)(event)
    except EventNotSent as exc:
        print(f"rlsizer models {args.models_command}: the change IS made in S3, but {exc}", file=sys.stderr)
        return 1
    print(f"ModelPublished sent to {settings.topic('models')}")
    return 0
