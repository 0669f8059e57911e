"""``rlsizer health [--json]``: run every health check once and print the state.

Exit code 0 when nothing FAILs, 1 otherwise, so it serves as a probe in scripts.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from config.settings import Settings
from rlsizer.health.monitor import HealthMonitor
from rlsizer.health.probes import standard_checks


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("health", help="run every health check once and print the result")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from models.registry import ModelRegistry  # lazy: keeps `rlsizer --help` fast
    from models.store import make_s3_client  # lazy: keeps `rlsizer --help` fast

    monitor = HealthMonitor(
        checks=standard_checks(
            settings,
            s3_client_factory=lambda: make_s3_client(settings),
            registry_factory=lambda: ModelRegistry.from_settings(settings),
        ),
        publish=lambda event: None,
    )
    events = monitor.run_all()
    if args.json:
        print(
            json.dumps(
                {
                    "status": monitor.overall(),
                    "checks": [
                        {
                            "component": e.component,
                            "check": e.check,
                            "status": e.status,
                            "detail": e.detail,
                            "action": e.action,
                            "ts": e.ts_event.isoformat(),
                        }
                        for e in events
                    ],
                },
                indent=2,
            )
        )
    else:
        for e in events:
            print(f"{e.status:<5} {e.component:<9} {e.check:<18} {e.detail}")
        print(f"overall: {monitor.overall()}")
    return 1 if monitor.overall() == "FAIL" else 0
