"""The trainer's status file: when it last succeeded, how often it failed since.

Written atomically by the trainer after each round, read by the health monitor
(training activity check) and by ``rlsizer health``. Missing or unreadable means
"no round yet", never an exception.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainerStatus:
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    consecutive_failures: int = 0
    last_error: str = ""
    last_version: str = ""
    outcomes_at_last_success: int = 0

    def succeeded(self, now: datetime, *, version: str, outcomes: int) -> TrainerStatus:
        return replace(
            self,
            last_attempt=now,
            last_success=now,
            consecutive_failures=0,
            last_error="",
            last_version=version,
            outcomes_at_last_success=outcomes,
        )

    def failed(self, now: datetime, error: str) -> TrainerStatus:
        return replace(
            self, last_attempt=now, consecutive_failures=self.consecutive_failures + 1, last_error=error[:500]
        )


def status_path(data_dir: Path) -> Path:
    return Path(data_dir) / "trainer" / "status.json"


def load_status(data_dir: Path) -> TrainerStatus:
    try:
        raw = json.loads(status_path(data_dir).read_text())
        for key in ("last_attempt", "last_success"):
            raw[key] = datetime.fromisoformat(raw[key]) if raw.get(key) else None
        return TrainerStatus(**raw)
    except (OSError, ValueError, TypeError):
        return TrainerStatus()


def save_status(data_dir: Path, status: TrainerStatus) -> None:
    path = status_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(status).items()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
