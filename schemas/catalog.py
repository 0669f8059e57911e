"""Load the ``.avsc`` files that define the rlsizer.v1 events.

The schemas are the source of truth: ``schemas.events`` mirrors them and takes
the symbols of their enums from here (``enum_symbols``), so this module reads
files by record name and imports no event class.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

if TYPE_CHECKING:
    from schemas.events import Event

SCHEMA_DIR = Path(__file__).resolve().parent

_P = ParamSpec("_P")
_R = TypeVar("_R")


def cache_per_type(f: Callable[_P, _R]) -> Callable[_P, _R]:
    """``functools.cache`` for a function of an event type (and other hashable arguments).

    Classes are hashable, but typeshed's ``Hashable`` check rejects a class whose instances
    define ``__hash__`` (every frozen dataclass), so the cached function is typed here once.
    """
    return cast("Callable[_P, _R]", cache(f))


def schema_path(event_type: type[Event]) -> Path:
    return SCHEMA_DIR / f"{event_type.__name__}.avsc"


@cache
def _text(record: str) -> str:
    """The ``.avsc`` text of ``record`` (its name without namespace), canonicalised to compact JSON."""
    return json.dumps(json.loads((SCHEMA_DIR / f"{record}.avsc").read_text()), separators=(",", ":"))


def schema_text(event_type: type[Event]) -> str:
    """The ``.avsc`` text, canonicalised to compact JSON (what the registry stores)."""
    return _text(event_type.__name__)


@cache_per_type
def schema_dict(event_type: type[Event]) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_text(event_type.__name__))
    return schema


def enum_symbols(record: str, field: str) -> tuple[str, ...]:
    """The symbols of the enum that is the type of ``field`` in ``record``'s schema (KeyError if it is not one)."""
    for f in json.loads(_text(record))["fields"]:
        if f["name"] == field and isinstance(f["type"], dict) and f["type"].get("type") == "enum":
            return tuple(f["type"]["symbols"])
    raise KeyError(f"{record}.{field} is not an enum field of {record}.avsc")
