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
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from config.settings import Settings

LIST_HEADER = ("VERSION", "ALIAS", "CREATED", "RETURN", "SESSION_CVAR5", "VERDICT")


def summary_cells(metrics: dict[str, float]) -> tuple[str, str, str]:
    """A version's held-out return, session CVaR 5 % (all walk-forward windows together) and the gate's verdict."""

    def num(key: str) -> str:
        return f"{metrics[key]:+.2f}" if key in metrics else "-"

    promote = metrics.get("gate_promote")
    verdict = "-" if promote is None else "promoted" if promote == 1.0 else "refused"
    return num("holdout_return"), num("holdout_session_cvar5"), verdict


def evidence_lines(metrics: dict[str, float]) -> list[str]:
    """The gate's numbers in a manifest's metrics (``trainer.round.manifest_metrics``), one line per window and reference."""

    n = int(metrics.get("gate_windows", 0))
    if not n:
        return []
    lines = [f"walk-forward evidence ({n} held-out windows; R, session = UTC day):"]
    refs = sorted(
        {k[len("gate_vs_") : -len("_passed")] for k in metrics if k.startswith("gate_vs_") and k.endswith("_passed")}
    )
    lines.append("  window                  " + "".join(f"{name:>24}" for name in ["model", *refs]))
    for k in range(1, n + 1):
        start = datetime.fromtimestamp(metrics[f"wf{k}_from_s"], tz=UTC)
        end = datetime.fromtimestamp(metrics[f"wf{k}_to_s"], tz=UTC) - timedelta(days=1)
        cells = []
        for prefix in [f"wf{k}", *(f"wf{k}_{r}" for r in refs)]:
            ret, tail = metrics.get(f"{prefix}_return"), metrics.get(f"{prefix}_session_cvar5")
            cells.append("-" if ret is None else f"{ret:+.2f} / {tail:+.2f}" if tail is not None else f"{ret:+.2f}")
        lines.append(f"  w{k} {start:%Y-%m-%d}..{end:%Y-%m-%d}  " + "".join(f"{c:>24}" for c in cells))
    lines.append("  (each cell: return / session CVaR5)")
    for ref in refs:
        required = "required" if metrics.get(f"gate_vs_{ref}_required") == 1.0 else "not required"
        lines.append(
            f"  vs {ref} ({required}): return diff lower bound {metrics.get(f'gate_vs_{ref}_return_diff_lower', float('nan')):+.2f} (needs > 0), "
            f"session CVaR5 diff lower bound {metrics.get(f'gate_vs_{ref}_session_cvar_diff_lower', float('nan')):+.2f} (needs >= 0), "
            f"not worse in {int(metrics.get(f'gate_vs_{ref}_windows_not_worse', 0))}/{n} windows: "
            f"{'passed' if metrics.get(f'gate_vs_{ref}_passed') == 1.0 else 'failed'}"
        )
    lines.append(f"verdict: {'promoted' if metrics.get('gate_promote') == 1.0 else 'refused'}")
    return lines


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list, inspect, promote and roll back model versions")
    parser.add_argument("--name", default=None, help="model name (default: RLSIZER_MODEL_NAME)")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    sub.add_parser(
        "list", help="versions with alias, creation time, held-out return, session CVaR 5% and the gate's verdict"
    ).set_defaults(func=_run(_list))
    show = sub.add_parser(
        "show", help="a version's manifest, the gate's walk-forward evidence, and whether it verifies"
    )
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

        from models.errors import ModelRegistryError  # lazy: keeps `rlsizer --help` fast
        from models.registry import ModelRegistry  # lazy: keeps `rlsizer --help` fast
        from models.signing import SigningKeyError  # lazy: keeps `rlsizer --help` fast

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
    from models.aliases import ALIASES  # lazy: keeps `rlsizer --help` fast
    from models.errors import ModelVerificationError  # lazy: keeps `rlsizer --help` fast
    from models.manifest import format_ts  # lazy: keeps `rlsizer --help` fast

    aliases: dict[str, str | None] = {}
    for name in ALIASES:
        try:
            record = registry.alias(name)
        except ModelVerificationError as exc:  # shown, and the versions listed all the same
            print(f"{name} alias REFUSED ({exc.kind}): {exc.reason}", file=sys.stderr)
            record = None
        aliases[name] = None if record is None else record.version
    rows: list[tuple[str, ...]] = [LIST_HEADER]
    for version in registry.list_versions():
        named = ",".join(a for a, named_version in aliases.items() if named_version == version)
        try:
            manifest = registry.read_manifest(version)
        except ModelVerificationError as exc:
            rows.append((version, named or "-", "-", "-", "-", f"UNVERIFIED ({exc.kind})"))
            continue
        rows.append(
            (version, named or "-", format_ts(manifest.created_at)[:19] + "Z", *summary_cells(dict(manifest.metrics)))
        )
    if len(rows) == 1:
        print(f"no versions of {registry.model_name} in s3://{settings.s3_bucket}")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_HEADER))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(width) if i < 3 or i == 5 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return 0


def _show(registry: Any, args: argparse.Namespace, settings: Settings) -> int:
    status = registry.show(args.version)
    doc = status.manifest.to_dict() if status.manifest is not None else None
    print(json.dumps(doc, indent=2, sort_keys=True))
    if status.manifest is not None:
        for line in evidence_lines(dict(status.manifest.metrics)):
            print(line)
    print(f"aliases: {', '.join(status.aliases) or '-'}")
    print("verification: OK (signature and sha256)" if status.verified else f"verification: FAILED {status.problem}")
    return 0 if status.verified else 1


def _promote(registry: Any, args: argparse.Namespace, settings: Settings) -> int:
    from models.errors import ModelVerificationError  # lazy: keeps `rlsizer --help` fast

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
    from models.aliases import CHAMPION  # lazy: keeps `rlsizer --help` fast
    from models.events import EventNotSent, KafkaModelEvents  # lazy: keeps `rlsizer --help` fast

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
