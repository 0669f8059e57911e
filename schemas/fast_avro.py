"""Compiled Avro body encoders, and readers of a body's leading fields, for our own event schemas.

What is kept here is what earns its place against fastavro with schemas parsed
once (``fastavro.parse_schema``, ``schemaless_writer``/``schemaless_reader``):
the compiled path takes at most half of fastavro's time on its path.
``bench/bench_codec.py``, best of 9 alternating rounds, 6 runs on the shared 2-core
machine (2026-12-07, load 3-5; 3 of them before the decoder was removed),
compiled/fastavro:

* encoders (``compiled``), per signal on the worker's path: FeaturesComputed (80
  features) 9.5-12.6 against 40.3-49.4 us for the body, 0.22-0.26 (through
  ``EventCodec.encode`` 0.19-0.27); SizeDecided 3.7-4.3 against 14.3-22.9 us,
  0.19-0.26 (``EventCodec.encode`` 0.31-0.34). Kept.
* the head reader (``head_decoder``), which reads ``ts_event`` and ``symbol`` of every
  stored decision when a worker rebuilds its retention index after a rebalance:
  ``EventCodec.decode_head`` of a SizeDecided 5.6-6.1 against 15.1-21.2 us, 0.28-0.38.
  Kept.
* the compiled record decoder (removed): on the worker's input path it took
  0.64-0.71 of fastavro's time for a SignalRaised body, 0.50-0.54 for a BarClosed and
  0.45-0.63 for an OrderFilled; through ``EventCodec.decode`` (framing and the
  dataclass) 0.71-0.77, 0.60-0.61 and 0.53-0.77. Every decode is fastavro's now:
  ``EventCodec.decode`` 19-22 us for a SignalRaised instead of 13.5-15.6.

Both are generated or specialised once per schema. The encoder is Python source
compiled with ``exec`` (``schemas.fast_avro_encode``): one straight-line function
per schema, because a call per field cost as much as the work itself. It reads each
field as an attribute, writes a short string's length from a table, a run of
doubles with one ``struct`` call, an 8-byte timestamp from a table of 14-bit pairs,
and joins the parts (after the caller's framing header) with one ``b"".join``; maps
of doubles remember the key sets already seen (their key bytes and a ``struct``
laying out the whole map), so the live feature map is one ``struct`` call. The head
reader (``schemas.fast_avro_decode``) chains one step per field up to the last one
asked for.

The contract is fastavro's, to the byte and to the value. Where that cannot be
certain the compiled code does not guess, it refuses and the caller uses fastavro:

* a schema with a type not listed below compiles to nothing (``Unsupported``);
* the encoder raises (``Refused`` or any other exception) on a value whose type
  is not the plain one (``str``, ``int``, aware ``datetime``, ...; map keys must be
  exactly ``str``: fastavro calls a key's own ``encode``);
* the head reader raises on bytes that are short or that fastavro reads in its own
  way (an out-of-range enum or union index, a varint longer than 64 bits, a
  negative length), and has nothing to read past a map.

Supported field types: ``string``, ``bytes``, ``int``, ``long``, ``double``,
``long`` with logical type ``timestamp-micros``, ``enum``, a two-branch union of
``null`` and ``string``/``double``/``bytes``, and maps of ``double`` or ``string``.
This module holds the entry points; what both halves share (a field's kind, the
varint, the errors) is in ``schemas.avro_kinds``.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.avro_kinds import RecordEncoder, Unsupported, kind_of
from schemas.catalog import cache_per_type, schema_dict
from schemas.events import Event
from schemas.fast_avro_decode import head_reader
from schemas.fast_avro_encode import record_encoder


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """One schema's encoder: event -> body bytes, after ``head``."""

    name: str
    encode: RecordEncoder


@cache_per_type
def compiled(event_type: type[Event]) -> CompiledSchema | None:
    """The compiled codec of ``event_type``'s schema, or None when the schema is unsupported."""
    try:
        return compile_schema(schema_dict(event_type))
    except Unsupported:
        return None


def compile_schema(schema: Mapping[str, Any]) -> CompiledSchema:
    """Compile a record schema (raises ``Unsupported`` for a type not in the module docstring)."""
    if schema.get("type") != "record" or not isinstance(schema.get("fields"), list):
        raise Unsupported(f"not a record schema: {schema.get('name')!r}")
    names = tuple(str(f["name"]) for f in schema["fields"])
    for name in names:  # they are written into the generated source
        if not name.isidentifier() or keyword.iskeyword(name):
            raise Unsupported(f"field {name!r}: not a Python identifier")
    kinds = [kind_of(f["name"], f["type"]) for f in schema["fields"]]
    return CompiledSchema(name=str(schema.get("name")), encode=record_encoder(names, kinds))


@cache_per_type
def head_decoder(event_type: type[Event], names: tuple[str, ...]) -> Callable[[bytes], dict[str, Any]] | None:
    """A reader of only ``names`` from a body of ``event_type``'s schema, or None when it has none.

    It reads the fields in order up to the last of ``names`` and stops there: the
    bytes after it are neither read nor checked, so it serves bookkeeping that
    needs a record's ids (a worker's retention index, rebuilt after a rebalance), never validation.
    """
    return head_reader(schema_dict(event_type), names)
