"""Champion/challenger aliases as values: which version an alias names, and the versions it named before.

Pure functions move an alias forward (``moved``) or back (``rolled_back``); the
registry stores the result with a conditional write so two operators cannot
silently overwrite each other. Whatever version an alias names is verified in full
before it is served; the alias record itself is signed as well (``signed_bytes``,
HMAC-SHA256 of ``to_bytes()`` under the model key), so nobody without the key can
point the champion at another signed version, such as a challenger the gate refused.
Stored, it is the record's JSON with a ``signature`` field; a reader that knows
nothing of signatures still reads the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from models.errors import TAMPERED_ALIAS, ModelRegistryError, ModelVerificationError, NoPreviousChampion
from models.manifest import ManifestError, check_safe_name, format_ts, parse_ts
from models.signing import Signature, parse_signature

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
ALIASES: Final = (CHAMPION, CHALLENGER)
MAX_HISTORY: Final = 50
SIGNATURE_FIELD: Final = "signature"


@dataclass(frozen=True, slots=True, kw_only=True)
class AliasRecord:
    alias: str
    version: str
    history: tuple[str, ...] = ()  # versions named before, most recent last
    updated_at: datetime

    def __post_init__(self) -> None:
        check_alias(self.alias)
        check_safe_name("version", self.version)
        object.__setattr__(self, "history", tuple(self.history)[-MAX_HISTORY:])

    @property
    def previous(self) -> str | None:
        return self.history[-1] if self.history else None

    def to_bytes(self) -> bytes:
        doc = {
            "alias": self.alias,
            "version": self.version,
            "history": list(self.history),
            "updated_at": format_ts(self.updated_at),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes) -> AliasRecord:
        try:
            doc = json.loads(data.decode("utf-8"))
            return cls(
                alias=doc["alias"],
                version=doc["version"],
                history=tuple(doc["history"]),
                updated_at=parse_ts("updated_at", doc["updated_at"]),
            )
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ModelRegistryError(f"alias record is malformed: {exc}") from exc


def signed_bytes(record: AliasRecord, signature: Signature) -> bytes:
    """The stored alias: ``record``'s fields and ``signature`` (of ``record.to_bytes()``) beside them."""
    doc = json.loads(record.to_bytes())
    doc[SIGNATURE_FIELD] = json.loads(signature.to_bytes())
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def split_signed(data: bytes) -> tuple[AliasRecord, Signature | None]:
    """The record stored in ``data`` and its signature (``None``: stored unsigned, as before signing).

    Bytes that hold no record are a tampered (or corrupt) alias too, so a promote may replace them.
    """
    try:
        record = AliasRecord.from_bytes(data)
    except ModelRegistryError as exc:
        raise ModelVerificationError(TAMPERED_ALIAS, str(exc)) from None
    try:
        signature = json.loads(data.decode("utf-8")).get(SIGNATURE_FIELD)
        if signature is None:
            return record, None
        return record, parse_signature(json.dumps(signature).encode("ascii"))
    except ModelVerificationError as exc:
        raise ModelVerificationError(TAMPERED_ALIAS, f"{record.alias} alias: {exc.reason}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelVerificationError(
            TAMPERED_ALIAS, f"{record.alias} alias: its signature is malformed ({exc})"
        ) from None


def check_alias(alias: str) -> str:
    if alias not in ALIASES:
        raise ManifestError(f"alias must be one of {', '.join(ALIASES)}, got {alias!r}")
    return alias


def moved(current: AliasRecord | None, alias: str, version: str, now: datetime) -> AliasRecord:
    """``alias`` now names ``version``; the version it named before joins the history."""
    if current is None:
        return AliasRecord(alias=alias, version=version, history=(), updated_at=now)
    if current.version == version:
        return current
    return AliasRecord(alias=alias, version=version, history=(*current.history, current.version), updated_at=now)


def rolled_back(current: AliasRecord | None, now: datetime) -> AliasRecord:
    """The alias names its previous version again; the abandoned one leaves the history."""
    if current is None or not current.history:
        what = "no champion" if current is None else f"champion {current.version} has no previous champion"
        raise NoPreviousChampion(f"cannot roll back: {what}")
    return AliasRecord(alias=current.alias, version=current.history[-1], history=current.history[:-1], updated_at=now)
