"""What the worker's state values share: their error, and the version-1 JSON envelope.

``StrategyHistory`` is stored as JSON (``{"v": 1, ...}``); ``AccountState`` as packed
arrays, whose JSON form still loads. Both read that JSON with ``load_versioned``.
"""

from __future__ import annotations

import json
from typing import Any, Final

JSON_VERSION: Final = 1


class StateCorrupt(ValueError):
    """Serialised history or account state cannot be decoded."""


def load_versioned(raw: bytes, what: str) -> dict[str, Any]:
    """The JSON object in ``raw`` if it carries ``"v": JSON_VERSION``; ``StateCorrupt`` naming ``what`` otherwise."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorrupt(f"cannot decode {what}: {exc}") from exc
    if not isinstance(body, dict) or body.get("v") != JSON_VERSION:
        raise StateCorrupt(f"{what}: unsupported format {str(body)[:80]!r} (expected version {JSON_VERSION})")
    return body
