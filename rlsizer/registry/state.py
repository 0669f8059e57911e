"""The schema registry's state and rules, without HTTP or Kafka.

``RegistryState`` is rebuilt by applying the records of the ``_schemas`` topic in
order (``apply``); ``plan_registration`` decides what a new registration means
(existing id, new version, or a refusal) and returns the record to append. The
server writes that record to Kafka first and applies it only once it is durable.

Records use Confluent's ``_schemas`` layout, so the log reads like the real
registry's: key ``{"keytype":"SCHEMA","subject":..,"version":..,"magic":1}`` with
value ``{"subject","version","id","schema","deleted"}``; key
``{"keytype":"CONFIG","subject":..|null,"magic":0}`` with value
``{"compatibilityLevel": ..}``; a ``None`` value (tombstone) removes the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

COMPATIBILITY_LEVELS: Final = frozenset(
    {"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}
)
DEFAULT_COMPATIBILITY: Final = "BACKWARD"


class RegistryError(Exception):
    """An answer in Confluent's error format: HTTP status plus ``error_code`` and ``message``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(subject: str, version: object) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found for subject '{subject}'.")


def schema_not_found(detail: str = "Schema not found") -> RegistryError:
    return RegistryError(404, 40403, detail)


# --- schema text ---------------------------------------------------------------------------


def canonical_key(text: str) -> str:
    """Identity of a schema: compact JSON with sorted object keys (array order, so field order, kept)."""
    return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)


def parse_schema(text: str) -> avro.schema.Schema:
    """Parse Avro schema text or raise ``RegistryError`` 42201 saying why."""
    try:
        return avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError, TypeError) as exc:
        raise RegistryError(422, 42201, f"Invalid schema: {exc}") from exc


def compact(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"))


def incompatibilities(
    level: str, candidate: avro.schema.Schema, existing: list[tuple[int, avro.schema.Schema]]
) -> list[str]:
    """Why ``candidate`` may not follow ``existing`` ((version, schema), oldest first) under ``level``."""
    if level == "NONE" or not existing:
        return []
    against = existing if level.endswith("_TRANSITIVE") else existing[-1:]
    base = level.removesuffix("_TRANSITIVE")
    messages: list[str] = []
    for number, old in against:
        checks = []
        if base in ("BACKWARD", "FULL"):
            checks.append((f"the new schema cannot read data written with version {number}", candidate, old))
        if base in ("FORWARD", "FULL"):
            checks.append((f"version {number} cannot read data written with the new schema", old, candidate))
        for what, reader, writer in checks:
            result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
            if result.compatibility is SchemaCompatibilityType.incompatible:
                kinds = ", ".join(sorted({i.value for i in result.incompatibilities}))
                detail = "; ".join(sorted(result.messages))
                messages.append(f"{what} ({kinds}: {detail} at {', '.join(sorted(result.locations))})")
    return messages


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaVersion:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False

    def as_response(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "id": self.schema_id, "schema": self.schema}


@dataclass(frozen=True, slots=True)
class LogRecord:
    key: bytes
    value: bytes | None


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def schema_record(v: SchemaVersion) -> LogRecord:
    key = {"keytype": "SCHEMA", "subject": v.subject, "version": v.version, "magic": 1}
    value = {"subject": v.subject, "version": v.version, "id": v.schema_id, "schema": v.schema, "deleted": v.deleted}
    return LogRecord(_dumps(key), _dumps(value))


def schema_tombstone(subject: str, version: int) -> LogRecord:
    return LogRecord(_dumps({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}), None)


def config_record(subject: str | None, level: str | None) -> LogRecord:
    key = _dumps({"keytype": "CONFIG", "subject": subject, "magic": 0})
    return LogRecord(key, None if level is None else _dumps({"compatibilityLevel": level}))


# --- state ---------------------------------------------------------------------------------


@dataclass
class RegistryState:
    subjects: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    ids_by_key: dict[str, int] = field(default_factory=dict)
    configs: dict[str | None, str] = field(default_factory=dict)
    max_id: int = 0

    def apply(self, record: LogRecord) -> None:
        """Apply one ``_schemas`` record; unknown or malformed records are skipped."""
        try:
            key = json.loads(record.key)
            value = None if record.value is None else json.loads(record.value)
        except ValueError:
            return
        if not isinstance(key, dict):
            return
        if key.get("keytype") == "CONFIG":
            subject = key.get("subject")
            if value is None:
                self.configs.pop(subject, None)
            elif isinstance(value, dict) and value.get("compatibilityLevel") in COMPATIBILITY_LEVELS:
                self.configs[subject] = value["compatibilityLevel"]
        elif key.get("keytype") == "SCHEMA":
            subject, version = key.get("subject"), key.get("version")
            if not isinstance(subject, str) or not isinstance(version, int):
                return
            if value is None:
                self.subjects.get(subject, {}).pop(version, None)
                return
            v = SchemaVersion(
                subject=subject,
                version=version,
                schema_id=int(value["id"]),
                schema=str(value["schema"]),
                deleted=bool(value.get("deleted", False)),
            )
            self.subjects.setdefault(subject, {})[version] = v
            self.texts.setdefault(v.schema_id, v.schema)
            self.ids_by_key.setdefault(canonical_key(v.schema), v.schema_id)
            self.max_id = max(self.max_id, v.schema_id)

    # --- queries ---

    def compatibility(self, subject: str | None) -> str:
        if subject is not None and subject in self.configs:
            return self.configs[subject]
        return self.configs.get(None, DEFAULT_COMPATIBILITY)

    def versions(self, subject: str, *, deleted: bool = False) -> list[SchemaVersion]:
        found = self.subjects.get(subject, {})
        return [found[n] for n in sorted(found) if deleted or not found[n].deleted]

    def subject_names(self, *, deleted: bool = False, prefix: str = "") -> list[str]:
        return sorted(s for s in self.subjects if s.startswith(prefix) and self.versions(s, deleted=deleted))

    def version(self, subject: str, version: str, *, deleted: bool = False) -> SchemaVersion:
        live = self.versions(subject, deleted=deleted)
        if not self.versions(subject, deleted=True):
            raise subject_not_found(subject)
        if version in ("latest", "-1"):
            if not live:
                raise version_not_found(subject, version)
            return live[-1]
        try:
            number = int(version)
        except ValueError:
            raise RegistryError(422, 42202, f"The specified version '{version}' is not a valid version id.") from None
        for v in live:
            if v.version == number:
                return v
        raise version_not_found(subject, number)

    def find(self, subject: str, text: str, *, deleted: bool = False) -> SchemaVersion | None:
        key = canonical_key(text)
        for v in reversed(self.versions(subject, deleted=deleted)):
            if canonical_key(v.schema) == key:
                return v
        return None

    def uses_of(self, schema_id: int) -> list[SchemaVersion]:
        return [v for s in sorted(self.subjects) for v in self.versions(s) if v.schema_id == schema_id]

    # --- decisions ---

    def plan_registration(self, subject: str, text: str) -> tuple[SchemaVersion, LogRecord | None]:
        """The version this registration yields and the record to append (``None``: already there)."""
        candidate = parse_schema(text)
        existing = self.find(subject, text)
        if existing is not None:
            return existing, None
        live = self.versions(subject)
        problems = incompatibilities(
            self.compatibility(subject), candidate, [(v.version, parse_schema(v.schema)) for v in live]
        )
        if problems:
            raise RegistryError(
                409,
                409,
                f"Schema being registered is incompatible with an earlier schema for subject '{subject}' "
                f"({self.compatibility(subject)}): " + " | ".join(problems),
            )
        key = canonical_key(text)
        schema_id = self.ids_by_key.get(key) or self.max_id + 1
        stored = self.texts.get(schema_id, compact(text))
        all_versions = self.subjects.get(subject, {})
        version = max(all_versions, default=0) + 1
        new = SchemaVersion(subject=subject, version=version, schema_id=schema_id, schema=stored)
        return new, schema_record(new)

    def check(self, subject: str, text: str, version: str | None) -> list[str]:
        """Problems of ``text`` against one version (``version``) or per the subject's level (``None``)."""
        candidate = parse_schema(text)
        level = self.compatibility(subject)
        if version is None:
            live = self.versions(subject)
            if not live:
                raise subject_not_found(subject)
            return incompatibilities(level, candidate, [(v.version, parse_schema(v.schema)) for v in live])
        target = self.version(subject, version)
        return incompatibilities(
            level.removesuffix("_TRANSITIVE"), candidate, [(target.version, parse_schema(target.schema))]
        )
