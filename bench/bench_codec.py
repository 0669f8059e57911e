"""Per-event cost of the worker's Avro work: fastavro (schemas parsed once) against the compiled pieces.

Per signal the worker decodes its input records (a SignalRaised, and the
BarClosed and OrderFilled records around it) and encodes one FeaturesComputed
(the live feature set) and one SizeDecided; after a rebalance it reads the head
(``ts_event``, ``symbol``) of every stored decision (``EventCodec.decode_head``).
For each this prints, in microseconds per call, the best and the median of
``ROUNDS`` rounds, the two legs measured in alternating rounds so that a busy
machine slows both alike, and compiled/fastavro (the rule: a compiled piece is
kept where it takes at most 0.5 of fastavro's time):

* the Avro body alone: ``fastavro.schemaless_reader``/``schemaless_writer`` with
  a schema from ``fastavro.parse_schema`` (parsed once: the parsed marker is kept,
  so fastavro does not parse it again on every call) against the compiled closure;
* the whole ``EventCodec`` call (framing, and for a decode the dataclass), with
  the compiled path on and switched off, and their sum per signal (decode the
  SignalRaised, encode its FeaturesComputed and SizeDecided): the codec as it is
  against fastavro for every body.

Pieces no longer compiled print the fastavro leg only. Asserts only that both
legs give the same bytes and values. The machine is shared: run it a few times.

    .venv/bin/python bench/bench_codec.py
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

import schemas.codec as codec_module
from agents.book import SymbolBook, decided
from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap
from schemas.catalog import schema_dict
from schemas.codec import EventCodec, InMemoryRegistry, to_record
from schemas.events import BarClosed, Event, FeaturesComputed, OrderFilled, SignalRaised, SizeDecided, field_names
from schemas.fast_avro import compiled, head_decoder

ROUNDS = 9
CALLS = 3000
HEAD = ("ts_event", "symbol")  # what agents.glue.decided_record.retention_entries reads of a stored decision


def _events() -> tuple[SignalRaised, BarClosed, OrderFilled, FeaturesComputed, SizeDecided]:
    now = datetime.now(UTC)
    signal = SignalRaised(
        event_id="5f0c1c8e-2b7a-4d5e-9c1f-0a6b2e3d4c5f",
        ts_event=now,
        ts_init=now,
        signal_id="bot-7:S3:AAPL:1717171717",
        strategy_id="S3",
        symbol="AAPL",
        side="BUY",
        price=189.37,
        atr=2.41,
        score=0.83,
        q_score=0.71,
        base_qty=25.0,
        stop_price=186.95,
        target_price=194.2,
        adapter="ccxt-binance",
        attrs={"tf": "1m", "run": "live"},
    )
    bar = BarClosed(
        event_id="5f0c1c8e-2b7a-4d5e-9c1f-0a6b2e3d4c60",
        ts_event=now - timedelta(minutes=1),
        ts_init=now,
        symbol="AAPL",
        interval="1m",
        open=189.1,
        high=189.6,
        low=188.9,
        close=189.37,
        volume=12345.0,
        bid=189.36,
        ask=189.38,
        bid_size=3.0,
        ask_size=5.0,
    )
    fill = OrderFilled(
        event_id="5f0c1c8e-2b7a-4d5e-9c1f-0a6b2e3d4c61",
        ts_event=now,
        ts_init=now,
        signal_id=signal.signal_id,
        order_id="ord-88123",
        symbol="AAPL",
        side="BUY",
        qty=25.0,
        price=189.4,
        fee=0.12,
        leg="ENTRY",
    )
    _, features, decision = decided(
        SymbolBook.empty("AAPL"), signal, strategy_map=StrategyMap.from_spec(""), slot=PolicySlot(), now=now
    )
    return signal, bar, fill, features, decision


@contextlib.contextmanager
def _fastavro_only() -> Iterator[None]:
    """EventCodec with the compiled pieces switched off: fastavro for every body."""
    saved = codec_module.compiled, codec_module.head_decoder
    codec_module.compiled = lambda event_type: None  # type: ignore[assignment]
    codec_module.head_decoder = lambda event_type, names: None  # type: ignore[assignment]
    try:
        yield
    finally:
        codec_module.compiled, codec_module.head_decoder = saved


def _per_call_us(
    fn: Callable[[], Any], wrap: Callable[[], contextlib.AbstractContextManager[None]] | None = None
) -> float:
    with wrap() if wrap else contextlib.nullcontext():
        start = time.perf_counter_ns()
        for _ in range(CALLS):
            fn()
        return (time.perf_counter_ns() - start) / CALLS / 1000


def _compare(
    slow: Callable[[], Any],
    fast: Callable[[], Any] | None,
    slow_wrap: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
) -> tuple[list[float], list[float]]:
    """Per-call us of each leg, one measurement per round, the legs alternating."""
    slow_us: list[float] = []
    fast_us: list[float] = []
    for _ in range(ROUNDS):
        slow_us.append(_per_call_us(slow, slow_wrap))
        if fast is not None:
            fast_us.append(_per_call_us(fast))
    return slow_us, fast_us


def _line(label: str, timings: tuple[list[float], list[float]]) -> str:
    slow, fast = timings
    text = f"{label:<38} fastavro {min(slow):6.2f} (median {statistics.median(slow):6.2f}) us"
    if fast:
        text += (
            f"   compiled {min(fast):6.2f} (median {statistics.median(fast):6.2f}) us"
            f"   compiled/fastavro {min(fast) / min(slow):.2f} (medians {statistics.median(fast) / statistics.median(slow):.2f})"
        )
    return text


def main() -> None:
    signal, bar, fill, features, decision = _events()
    codec = EventCodec(InMemoryRegistry())
    parsed = {type(e): fastavro.parse_schema(schema_dict(type(e))) for e in (signal, bar, fill, features, decision)}

    def fastavro_encode(event: Event) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed[type(event)], to_record(field_names(type(event)), event))
        return buf.getvalue()

    def fastavro_decode(event_type: type[Event], body: bytes) -> dict[str, Any]:
        return fastavro.schemaless_reader(io.BytesIO(body), parsed[event_type], None)

    print(
        f"FeaturesComputed {len(features.features)} features; {ROUNDS} rounds x {CALLS} calls; best (median) per call"
    )
    per_signal: dict[str, tuple[list[float], list[float]]] = {}  # the EventCodec calls of one signal
    for event in (signal, bar, fill):
        event_type = type(event)
        message = codec.encode("t", event)
        body = message[5:]
        fast = compiled(event_type)
        fast_decode = getattr(fast, "decode", None)
        if fast_decode is not None:
            assert fast_decode(body) == fastavro_decode(event_type, body)
        with _fastavro_only():
            assert codec.decode(message) == event
        assert codec.decode(message) == event
        name = event_type.__name__
        print(
            _line(
                f"{name} decode (body)",
                _compare(
                    lambda t=event_type, b=body: fastavro_decode(t, b),
                    None if fast_decode is None else lambda f=fast_decode, b=body: f(b),
                ),
            )
        )
        timings = _compare(lambda m=message: codec.decode(m), lambda m=message: codec.decode(m), _fastavro_only)
        per_signal[f"{name} decode"] = timings
        print(_line(f"{name} EventCodec.decode", timings if fast_decode is not None else (timings[0], [])))
    for event in (features, decision):
        fast = compiled(type(event))
        assert fast is not None
        assert fast.encode(event) == fastavro_encode(event)
        with _fastavro_only():
            before = codec.encode("t", event)
        assert codec.encode("t", event) == before
        name = type(event).__name__
        print(
            _line(
                f"{name} encode (body)",
                _compare(lambda e=event: fastavro_encode(e), lambda e=event, f=fast: f.encode(e)),
            )
        )
        timings = _compare(lambda e=event: codec.encode("t", e), lambda e=event: codec.encode("t", e), _fastavro_only)
        per_signal[f"{name} encode"] = timings
        print(_line(f"{name} EventCodec.encode", timings))
    legs = [per_signal[k] for k in ("SignalRaised decode", "FeaturesComputed encode", "SizeDecided encode")]
    slow, fast_ = (sum(min(leg[i]) for leg in legs) for i in (0, 1))
    print(
        f"{'per signal (1 decode, 2 encodes)':<38} fastavro {slow:6.2f} us (sum of bests)   "
        f"the codec as it is {fast_:6.2f} us   as is/fastavro {fast_ / slow:.2f}"
    )
    message = codec.encode("t", decision)
    head = head_decoder(SizeDecided, HEAD)
    assert head is not None and head(message[5:]) == {n: getattr(decision, n) for n in HEAD}
    with _fastavro_only():
        assert codec.decode_head(message, HEAD) == (SizeDecided, {n: getattr(decision, n) for n in HEAD})
    print(
        _line(
            "SizeDecided EventCodec.decode_head",
            _compare(
                lambda: codec.decode_head(message, HEAD), lambda: codec.decode_head(message, HEAD), _fastavro_only
            ),
        )
    )


if __name__ == "__main__":
    main()
