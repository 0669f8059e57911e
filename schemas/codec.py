"""Avro codec with Confluent framing: magic byte 0, 4-byte big-endian schema id, Avro body.

``EventCodec`` turns events into bytes any Confluent deserializer reads, and bytes
written by any Confluent serializer (with a compatible schema) into events. The
schema id comes from a registry (``SchemaRegistry`` protocol); the body uses the
writer's schema resolved against ours, so a newer producer with added fields still
decodes. Every failure surfaces as ``DecodeError`` with a ``kind`` for the
dead-letter record.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol, TypeVar, overload

import fastavro
import numpy as np
import pyarrow as pa
from fastavro.types import Schema

from schemas.catalog import schema_dict, schema_text
from schemas.columnar import Joined, Unsupported, decode_columns_at
from schemas.events import EVENT_BY_SCHEMA_NAME, NAMESPACE, Event, InvalidEvent, field_names
from schemas.fast_avro import compiled, head_decoder
from schemas.rules import EPOCH, surely_valid

_E = TypeVar("_E", bound=Event)

MAGIC_BYTE: Final = 0
_HEADER = struct.Struct(">bI")
_OBJECT_REPR: Final = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


class DecodeError(ValueError):
    """Bytes that cannot become an event; ``kind`` names the failure for dead-lettering."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class RegistryUnavailable(RuntimeError):
    """The registry did not say whether a schema id exists (unreachable, 5xx, refused credentials).

    Not a ``DecodeError``: the bytes may be fine, so they must not be dead-lettered or
    skipped. Callers wait and try again (the worker, the reconciler) or stop without
    recording progress (a replay), so nothing is lost while the registry is away.
    """


def _not_found(exc: Exception) -> bool:
    """The registry answered that the id does not exist (HTTP 404, or a lookup error of an in-memory one)."""
    return isinstance(exc, LookupError) or getattr(exc, "http_status_code", None) == 404


class SchemaRegistry(Protocol):
    """What the codec needs of a schema registry (Confluent REST or in-memory)."""

    def register(self, subject: str, schema: str) -> int: ...

    def schema_by_id(self, schema_id: int) -> str: ...


def topic_value_subject(topic: str, event_type: type[Event] | None = None) -> str:
    """Confluent's default TopicNameStrategy for values: ``<topic>-value``."""
    return f"{topic}-value"


def topic_record_subject(topic: str, event_type: type[Event]) -> str:
    """Confluent's TopicRecordNameStrategy: ``<topic>-<record full name>`` (``rlsizer.inputs-rlsizer.v1.BarClosed``)."""
    return f"{topic}-{NAMESPACE}.{event_type.__name__}"


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, bytes]:
    if data is None or len(data) < _HEADER.size:
        raise DecodeError(
            "malformed",
            f"message of {0 if data is None else len(data)} bytes is too short for Confluent framing (needs >= 5)",
        )
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise DecodeError("malformed", f"unknown magic byte {magic}; expected 0 (Confluent wire format)")
    return schema_id, data[_HEADER.size :]


@dataclass(frozen=True, slots=True)
class _EventSchema:
    event_type: type[Event]
    parsed: Schema
    names: tuple[str, ...]
    timestamps: tuple[str, ...] = ()  # fields that are timestamp-micros longs (or a union with one)


def _timestamp_fields(text: str) -> tuple[str, ...]:
    def is_timestamp(t: Any) -> bool:
        if isinstance(t, list):
            return any(is_timestamp(branch) for branch in t)
        return isinstance(t, dict) and t.get("type") == "long" and t.get("logicalType") == "timestamp-micros"

    return tuple(f["name"] for f in json.loads(text)["fields"] if is_timestamp(f["type"]))


def _as_timestamps(record: dict[str, Any], names: tuple[str, ...]) -> None:
    """A writer schema may declare a timestamp as a plain ``long`` (no ``logicalType``): the registry
    accepts it as compatible, and its values are the same microseconds since the epoch."""
    for name in names:
        value = record.get(name)
        if type(value) is int:
            try:
                record[name] = EPOCH + timedelta(microseconds=value)
            except OverflowError:
                raise DecodeError(
                    "invalid_value", f"{name}: {value} microseconds since the epoch is out of range"
                ) from None


def _canonical(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)


def _parse(text: str) -> Schema:
    """Parsed once: the result keeps fastavro's parsed marker, without which its reader and writer
    parse the schema again on every call (a SignalRaised body took 25-34 us to read instead of 14)."""
    return fastavro.parse_schema(json.loads(text))


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """What ``EventCodec.decode_batch`` made of a list of messages.

    ``columns``: per event type, the input positions of valid events and one Arrow
    array per Avro field holding exactly those rows (timestamps as naive UTC
    micros, maps as MapArrays). ``singles``: every other position, with the event
    or the exception (a ``DecodeError`` as a rule) that ``decode`` raises for it.
    """

    columns: dict[type[Event], tuple[np.ndarray, dict[str, pa.Array]]]
    singles: list[tuple[int, Event | Exception]]


class EventCodec:
    """Encode and decode events for topics, with schema ids from a registry."""

    def __init__(
        self,
        registry: SchemaRegistry,
        subject_for: Callable[[str, type[Event]], str] = topic_value_subject,
    ) -> None:
        self._registry = registry
        self._subject_for = subject_for
        self._ids: dict[tuple[str, type[Event]], int] = {}
        self._ours: dict[type[Event], _EventSchema] = {}
        self._writers: dict[int, tuple[Schema, _EventSchema, bool]] = {}
        self._not_columnar: set[type[Event]] = set()
        self._encoders: dict[tuple[str, type[Event]], tuple[bytes, _EventSchema]] = {}  # framing header, our schema

    def _our_schema(self, event_type: type[Event]) -> _EventSchema:
        ours = self._ours.get(event_type)
        if ours is None:
            text = schema_text(event_type)
            ours = _EventSchema(event_type, _parse(text), field_names(event_type), _timestamp_fields(text))
            self._ours[event_type] = ours
        return ours

    def schema_id(self, topic: str, event_type: type[Event]) -> int:
        key = (topic, event_type)
        schema_id = self._ids.get(key)
        if schema_id is None:
            schema_id = self._registry.register(self._subject_for(topic, event_type), schema_text(event_type))
            self._ids[key] = schema_id
        return schema_id

    def encode(self, topic: str, event: Event) -> bytes:
        plan = self._encoders.get((topic, type(event)))
        if plan is None:
            plan = self._encoders[(topic, type(event))] = (
                frame(self.schema_id(topic, type(event)), b""),
                self._our_schema(type(event)),
            )
        header, ours = plan
        fast = compiled(type(event))  # looked up per call: switching it off (tests, bench/bench_codec.py) acts at once
        if fast is not None:
            try:
                return fast.encode(event, header)  # the header is joined with the body: no copy of the body
            except (
                Exception
            ):  # a value it does not write exactly as fastavro: fastavro writes it, or raises its own error
                pass
        return header + encode_body(ours.parsed, ours.names, event)

    @overload
    def decode(self, data: bytes | None, expected: None = None) -> Event: ...

    @overload
    def decode(self, data: bytes | None, expected: type[_E]) -> _E: ...

    def decode(self, data: bytes | None, expected: type[Event] | None = None) -> Event:
        """The event in ``data`` (raises ``DecodeError``).

        With ``expected``, a record written with the schema of another event type is
        refused as ``wrong_schema`` from its schema id, before its body is read: read
        with the wrong schema, a body decodes into nonsense values.
        """
        schema_id, body = unframe(data)
        writer, ours, same = self._writer(schema_id)
        if expected is not None and ours.event_type is not expected:
            raise DecodeError(
                "wrong_schema", f"schema id {schema_id} is {ours.event_type.__name__}'s, not {expected.__name__}'s"
            )
        try:
            record = fastavro.schemaless_reader(io.BytesIO(body), writer, None if same else ours.parsed)
        except Exception as exc:  # fastavro raises many types for bad bodies
            reason = _OBJECT_REPR.sub("the body", str(exc))  # fastavro names the stream it read by its address
            raise DecodeError("malformed", f"Avro body does not match schema id {schema_id}: {reason}") from exc
        if not isinstance(record, dict):  # a record schema reads as a dict; the registry may hold any schema
            raise DecodeError("wrong_schema", f"schema id {schema_id} is not a record schema")
        if not same:
            _as_timestamps(record, ours.timestamps)
        try:
            return ours.event_type(**record)
        except InvalidEvent as exc:
            raise DecodeError("invalid_value", f"{ours.event_type.__name__}: {exc}") from exc
        except TypeError as exc:
            raise DecodeError("wrong_schema", f"{ours.event_type.__name__}: {exc}") from exc

    def decode_head(self, data: bytes, names: tuple[str, ...]) -> tuple[type[Event], dict[str, Any]]:
        """The event type of ``data`` and only the fields ``names`` (raises ``DecodeError``).

        Cheap for ids at the front of a record: the rest of the body is not read,
        so it is *not* validated; ``decode`` tells whether the event is valid.
        Bodies not written with exactly our schema are decoded in full.
        """
        schema_id, body = unframe(data)
        _, ours, same = self._writer(schema_id)
        head = head_decoder(ours.event_type, names) if same else None
        if head is not None:
            try:
                return ours.event_type, head(body)
            except Exception:  # short or unusual bytes: the full decode gives the error
                pass
        event = self.decode(data)
        try:
            return type(event), {name: getattr(event, name) for name in names}
        except AttributeError as exc:
            raise DecodeError("wrong_schema", f"{type(event).__name__} has no field {exc.name!r}") from exc

    def decode_batch(self, datas: Sequence[bytes | None]) -> DecodedBatch:
        """Decode many messages at once, with the same outcome per message as ``decode``.

        Messages written with our own schema are decoded in columns (``schemas.columnar``)
        and checked column-wise with the event's rules (``schemas.rules``); any row either is unsure about goes
        through ``decode``, so events, errors and reasons are those of ``decode``.
        """
        joined = Joined.of(datas)  # once: each schema's rows are decoded from this buffer
        groups, slow = _group_by_schema_id(joined)
        columns: dict[type[Event], tuple[np.ndarray, dict[str, pa.Array]]] = {}
        for schema_id, positions in groups.items():
            try:
                _, ours, same = self._writer(schema_id)
            except DecodeError:
                same = False
            if not same or ours.event_type in self._not_columnar:
                slow += positions.tolist()
                continue
            try:
                decoded = decode_columns_at(schema_dict(ours.event_type), joined, positions, skip=_HEADER.size)
            except Unsupported:
                self._not_columnar.add(ours.event_type)
                slow += positions.tolist()
                continue
            index = positions
            good = decoded.ok.copy()
            exact = _rows(decoded.arrays, good)
            good[good] = surely_valid(ours.event_type, exact)
            if good.any():
                columns[ours.event_type] = (index[good], _rows(decoded.arrays, good))
            slow += index[~good].tolist()
        singles: list[tuple[int, Event | Exception]] = []
        for i in sorted(slow):
            try:
                singles.append((i, self.decode(datas[i])))
            except Exception as exc:  # DecodeError, or whatever else decode raises: the caller dead-letters it
                singles.append((i, exc))
        return DecodedBatch(columns, singles)

    def _writer(self, schema_id: int) -> tuple[Schema, _EventSchema, bool]:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        try:
            text = self._registry.schema_by_id(schema_id)
        except Exception as exc:
            if not _not_found(exc):
                raise RegistryUnavailable(
                    f"the schema registry did not answer for schema id {schema_id}: {exc}"
                ) from exc
            raise DecodeError("unknown_schema", f"schema id {schema_id} is not in the registry: {exc}") from exc
        try:
            raw = json.loads(text)
            name = raw.get("name", "") if isinstance(raw, dict) else ""
            if "." not in name and isinstance(raw, dict):
                name = f"{raw.get('namespace', '')}.{name}"
            event_type = EVENT_BY_SCHEMA_NAME[name]
        except (KeyError, ValueError) as exc:
            raise DecodeError(
                "wrong_schema", f"schema id {schema_id} is not an rlsizer.v1 event schema ({exc})"
            ) from exc
        ours = self._our_schema(event_type)
        # Same schema as ours: skip schema resolution (about 2x faster decode).
        same = _canonical(text) == _canonical(schema_text(event_type))
        cached = (ours.parsed if same else _parse(text), ours, same)
        self._writers[schema_id] = cached
        return cached


def _group_by_schema_id(joined: Joined) -> tuple[dict[int, np.ndarray], list[int]]:
    """Positions of Confluent-framed messages per schema id, and the positions of all others (a None is an empty message)."""
    buf, starts = joined.buf, joined.starts  # buf is zero-padded past the last message: headers read in bounds
    framed = (joined.ends - starts >= _HEADER.size) & (buf[starts] == MAGIC_BYTE)
    ids = np.zeros(len(joined), np.int64)
    for k in range(1, _HEADER.size):
        ids = (ids << 8) | buf[starts + k]
    groups = {int(schema_id): np.flatnonzero(framed & (ids == schema_id)) for schema_id in np.unique(ids[framed])}
    return groups, np.flatnonzero(~framed).tolist()


def _rows(arrays: dict[str, pa.Array], mask: np.ndarray) -> dict[str, pa.Array]:
    if mask.all():
        return arrays
    keep = pa.array(mask)
    return {name: array.filter(keep) for name, array in arrays.items()}


def to_record(names: tuple[str, ...], event: Event) -> dict[str, Any]:
    record = {name: getattr(event, name) for name in names}
    for name, value in record.items():
        if not isinstance(value, (str, bytes, int, float, bool, type(None))) and hasattr(value, "items"):
            record[name] = dict(value)
    return record


def encode_body(parsed: Schema, names: tuple[str, ...], event: Event) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, to_record(names, event))
    return buf.getvalue()


class InMemoryRegistry:
    """A registry kept in a dict: for unit tests and offline tools (same ids for same text)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._texts: dict[int, str] = {}

    def register(self, subject: str, schema: str) -> int:
        key = _canonical(schema)
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1
            self._texts[self._ids[key]] = schema
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> str:
        try:
            return self._texts[schema_id]
        except KeyError:
            raise KeyError(f"schema id {schema_id} not found") from None
