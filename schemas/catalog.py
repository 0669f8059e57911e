"""Load the ``.avsc`` files that define the rlsizer.v1 events."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from schemas.events import EVENT_TYPES, Event

SCHEMA_DIR = Path(__file__).resolve().parent


def schema_path(event_type: type[Event]) -> Path:
    return SCHEMA_DIR / f"{event_type.__name__}.avsc"


@cache
def schema_text(event_type: type[Event]) -> str:
    """The ``.avsc`` text, canonicalised to compact JSON (what the registry stores)."""
    return json.dumps(json.loads(schema_path(event_type).read_text()), separators=(",", ":"))


@cache
def schema_dict(event_type: type[Event]) -> dict[str, Any]:
    return json.loads(schema_text(event_type))


def all_schemas() -> dict[str, str]:
    """Full Avro name -> schema text, for every event."""
    return {t.schema_name: schema_text(t) for t in EVENT_TYPES}
