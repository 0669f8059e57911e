"""Per-event cost of the worker's Avro work: fastavro against the compiled codec (schemas.fast_avro).

Per signal the worker decodes one SignalRaised and encodes one FeaturesComputed
(80 features) and one SizeDecided. For each, in one run, this prints the
microseconds per event of the Avro body alone (fastavro call vs compiled
closure) and of the whole ``EventCodec`` call (with the compiled path, and with
it switched off, which is the codec as it was), and their ratios. Both legs run
interleaved, best of several rounds, so a busy machine slows both alike.
Asserts only that both legs give the same bytes and values.

    .venv/bin/python bench/bench_codec.py
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import fastavro

import schemas.codec as codec_module
from agents.book import SymbolBook, decided
from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap
from schemas.catalog import schema_dict
from schemas.codec import EventCodec, InMemoryRegistry, to_record
from schemas.events import Event, FeaturesComputed, SignalRaised, SizeDecided, field_names
from schemas.fast_avro import compiled

ROUNDS = 7
CALLS = 3000


def _events() -> tuple[SignalRaised, FeaturesComputed, SizeDecided]:
    now = datetime.now(timezone.utc)
    signal = SignalRaised(
        event_id="5f0c1c8e-2b7a-4d5e-9c1f-0a6b2e3d4c5f", ts_event=now, ts_init=now,
        signal_id="bot-7:S3:AAPL:1717171717", strategy_id="S3", symbol="AAPL", side="BUY",
        price=189.37, atr=2.41, score=0.83, q_score=0.71, base_qty=25.0, stop_price=186.95,
        target_price=194.2, adapter="ccxt-binance", attrs={"tf": "1m", "run": "live"},
    )
    _, features, decision = decided(SymbolBook.empty("AAPL"), signal, strategy_map=StrategyMap.from_spec(""),
                                    slot=PolicySlot(), now=now)
    return signal, features, decision


@contextlib.contextmanager
def _fastavro_only() -> Iterator[None]:
    """EventCodec with the compiled path switched off: fastavro for every body, as before."""
    saved = codec_module.compiled
    codec_module.compiled = lambda event_type: None  # type: ignore[assignment]
    try:
        yield
    finally:
        codec_module.compiled = saved


def _per_call_us(fn: Callable[[], Any], wrap: Callable[[], contextlib.AbstractContextManager[None]] | None = None) -> float:
    with wrap() if wrap else contextlib.nullcontext():
        start = time.perf_counter_ns()
        for _ in range(CALLS):
            fn()
        return (time.perf_counter_ns() - start) / CALLS / 1000


def _compare(slow: Callable[[], Any], fast: Callable[[], Any], slow_wrap: Callable[[], contextlib.AbstractContextManager[None]] | None = None) -> tuple[float, float]:
    """Best per-call us of each, the two measured in alternating rounds."""
    slow_us, fast_us = [], []
    for _ in range(ROUNDS):
        slow_us.append(_per_call_us(slow, slow_wrap))
        fast_us.append(_per_call_us(fast))
    return min(slow_us), min(fast_us)


def _line(label: str, slow_us: float, fast_us: float) -> str:
    return f"{label:<40} fastavro {slow_us:7.2f} us   compiled {fast_us:7.2f} us   x{slow_us / fast_us:.2f}"


def main() -> None:
    signal, features, decided = _events()
    codec = EventCodec(InMemoryRegistry())
    message = codec.encode("rlsizer.signals", signal)
    body = message[5:]
    parsed = {type(e): fastavro.parse_schema(schema_dict(type(e)), _write_hint=False) for e in (signal, features, decided)}

    def fastavro_encode(event: Event) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed[type(event)], to_record(field_names(type(event)), event))
        return buf.getvalue()

    sig_fast = compiled(SignalRaised)
    assert sig_fast is not None
    assert sig_fast.decode(body) == fastavro.schemaless_reader(io.BytesIO(body), parsed[SignalRaised], None)
    with _fastavro_only():
        assert codec.decode(message) == signal
        before = {type(e): codec.encode("t", e) for e in (features, decided)}
    assert codec.decode(message) == signal

    print(f"SignalRaised body {len(body)} bytes; FeaturesComputed {len(features.features)} features; "
          f"{ROUNDS} rounds x {CALLS} calls, best round")
    print(_line("SignalRaised decode (body)", *_compare(
        lambda: fastavro.schemaless_reader(io.BytesIO(body), parsed[SignalRaised], None), lambda: sig_fast.decode(body))))
    print(_line("SignalRaised EventCodec.decode", *_compare(
        lambda: codec.decode(message), lambda: codec.decode(message), _fastavro_only)))
    per_signal_slow, per_signal_fast = 0.0, 0.0
    for event in (features, decided):
        fast = compiled(type(event))
        assert fast is not None
        assert fast.encode(event) == fastavro_encode(event)
        assert codec.encode("t", event) == before[type(event)]
        name = type(event).__name__
        print(_line(f"{name} encode (body)", *_compare(lambda e=event: fastavro_encode(e), lambda e=event, f=fast: f.encode(e))))
        slow_us, fast_us = _compare(lambda e=event: codec.encode("t", e), lambda e=event: codec.encode("t", e), _fastavro_only)
        print(_line(f"{name} EventCodec.encode", slow_us, fast_us))
        per_signal_slow += slow_us
        per_signal_fast += fast_us
    slow_us, fast_us = _compare(lambda: codec.decode(message), lambda: codec.decode(message), _fastavro_only)
    print(_line("per signal (EventCodec: 1 decode, 2 encodes)", per_signal_slow + slow_us, per_signal_fast + fast_us))


if __name__ == "__main__":
    main()
