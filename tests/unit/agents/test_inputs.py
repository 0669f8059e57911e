"""agents.inputs: the worker's whole input path on in-memory tables, record by record, as the agent runs it."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from agents.glue import decided_record
from agents.inputs import InputPath, Outgoing, Source
from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap
from config.settings import Settings
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import EventRejected, FeaturesComputed, OrderFilled, SizeDecided, TradeClosed
from streams.partitioner import partition_for
from streams.topics import subject_for
from tests.unit.agents.market import T0, bar, signal
from tests.unit.agents.memory_tables import MemoryTables

SETTINGS = Settings(topic_partitions=6, max_future_seconds=0)
INPUTS = SETTINGS.topic("inputs")
P = partition_for(b"AAPL", 6)


class Log:
    """The inputs topic's partition of AAPL: records appended with their offsets."""

    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self.records: list[Source] = []

    def append(self, event: Any, partition: int = P) -> Source:
        src = Source(INPUTS, partition, len(self.records), event.symbol.encode(), self.codec.encode(INPUTS, event))
        self.records.append(src)
        return src


@pytest.fixture
def codec() -> EventCodec:
    return EventCodec(InMemoryRegistry(), subject_for=subject_for)


def make_path(codec: EventCodec, **settings: Any) -> InputPath:
    return InputPath(
        replace(SETTINGS, **settings),
        codec,
        StrategyMap.from_spec(""),
        PolicySlot(),
        partitions=lambda: 6,
        clock=lambda: T0 + timedelta(days=3650),
        timer_ns=time.perf_counter_ns,
    )


def decoded(codec: EventCodec, out: list[Outgoing]) -> list[Any]:
    return [codec.decode(o.value) for o in out]


def fill(leg: str, ts, *, signal_id: str = "sig-1", price: float = 100.0, event_id: str | None = None) -> OrderFilled:
    side = "BUY" if leg == "ENTRY" else "SELL"
    values: dict[str, Any] = dict(
        ts_event=ts,
        ts_init=ts,
        signal_id=signal_id,
        order_id=f"o-{signal_id}-{leg}",
        symbol="AAPL",
        side=side,
        qty=100.0,
        price=price,
        leg=leg,
    )
    if event_id is not None:
        values["event_id"] = event_id
    return OrderFilled(**values)


def test_a_signal_is_decided_from_the_bars_before_it_and_its_decision_sent_on_its_partition(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    for i in range(30):
        assert path.handle(log.append(bar(T0 - timedelta(days=30 - i), close=100 + i)), tables) == []
    out = path.handle(log.append(signal(T0)), tables)
    features, decision = decoded(codec, out)
    assert isinstance(features, FeaturesComputed) and isinstance(decision, SizeDecided)
    assert [o.partition for o in out] == [P, P] and [o.topic for o in out] == ["rlsizer.features", "rlsizer.decisions"]
    assert features.features["sig_price_gap"] == pytest.approx(100.0 / 129.0 - 1.0)  # the last close before it
    assert tables.book("AAPL").offset == 30 and tables.book("AAPL").account.open[0].signal_id == "sig-1"


def test_a_repeated_signal_gets_the_same_decision_and_changes_nothing(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    first = path.handle(log.append(signal(T0)), tables)
    account = tables.book("AAPL").account
    again = path.handle(log.append(signal(T0)), tables)
    assert [o.value for o in again] == [first[1].value]
    assert tables.book("AAPL").account is account


def test_input_read_again_after_its_book_applied_it_is_skipped(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    records = [log.append(bar(T0 - timedelta(days=2))), log.append(signal(T0)), log.append(bar(T0 + timedelta(days=1)))]
    for src in records:
        path.handle(src, tables)
    book = tables.book("AAPL")
    assert [path.handle(src, tables) for src in records] == [[], [], []]  # no out_of_order bar, no second decision
    assert tables.book("AAPL") is book


def test_after_a_crash_a_signal_decided_past_the_written_book_is_applied_again_with_its_stored_decision(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    path.handle(log.append(bar(T0 - timedelta(days=1))), tables)
    tables.flush()  # the book after the bar is written
    first = path.handle(log.append(signal(T0)), tables)  # decided (recorded at once), book not written
    tables.crash()
    assert tables.book("AAPL").offset == 0
    path.slot.swap(_Fixed(1.9))  # another policy now: the stored decision still stands
    again = path.handle(log.records[1], tables)
    assert decoded(codec, again)[1] == decoded(codec, first)[1]
    assert decoded(codec, again)[0].features == decoded(codec, first)[0].features
    assert tables.book("AAPL").account.open[0].multiplier == decoded(codec, first)[1].multiplier


def test_entry_and_exit_fills_close_the_trade_into_history_and_account(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    path.handle(log.append(signal(T0)), tables)
    assert path.handle(log.append(fill("ENTRY", T0, price=100.0)), tables) == []
    out = path.handle(log.append(fill("EXIT", T0 + timedelta(hours=2), price=106.0)), tables)
    (closed,) = decoded(codec, out)
    assert isinstance(closed, TradeClosed) and closed.r_multiple == pytest.approx(2.0)
    book = tables.book("AAPL")
    assert not book.trades and book.account.closed[0].signal_id == "sig-1"
    assert book.history("S1").outcomes[0].r_multiple == pytest.approx(2.0)
    # the exit delivered again (same event id, later offset): the same outcome again, nothing applied twice
    exit_id = closed.signal_id and decided_record.unpack(tables.decided("sig-1")).exit_event_id
    redo = path.handle(log.append(fill("EXIT", T0 + timedelta(hours=2), price=106.0, event_id=exit_id)), tables)
    assert [o.value for o in redo] == [o.value for o in out]
    assert tables.book("AAPL").account == book.account


@pytest.mark.parametrize(
    "case, kind",
    [
        ("orphan", "orphan_fill"),
        ("exit_first", "exit_before_entry"),
        ("two_entries", "duplicate"),
        ("after_close", "duplicate"),
    ],
)
def test_fills_that_cannot_apply_are_dead_lettered(codec, case, kind):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    path.handle(log.append(signal(T0)), tables)
    if case == "orphan":
        bad = fill("ENTRY", T0, signal_id="nobody")
    elif case == "exit_first":
        bad = fill("EXIT", T0)
    elif case == "two_entries":
        path.handle(log.append(fill("ENTRY", T0)), tables)
        bad = replace(fill("ENTRY", T0), event_id="another")
    else:
        path.handle(log.append(fill("ENTRY", T0)), tables)
        path.handle(log.append(fill("EXIT", T0 + timedelta(hours=1))), tables)
        bad = replace(fill("EXIT", T0 + timedelta(hours=1)), event_id="another")
    (letter,) = decoded(codec, path.handle(log.append(bad), tables))
    assert isinstance(letter, EventRejected) and letter.error_type == kind


def test_an_input_on_the_wrong_partition_is_dead_lettered_with_how_to_key_it(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    out = path.handle(log.append(signal(T0), partition=(P + 1) % 6), tables)
    (letter,) = decoded(codec, out)
    assert letter.error_type == "wrong_partition" and "murmur2" in letter.reason
    assert tables.book("AAPL") is None


def test_another_event_type_on_the_inputs_topic_is_wrong_schema(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    decision = SizeDecided(
        ts_event=T0,
        signal_id="x",
        symbol="AAPL",
        strategy_id="S1",
        multiplier=1.0,
        qty=1.0,
        policy="RULES",
        reason="r",
        latency_us=0,
    )
    (letter,) = decoded(codec, path.handle(log.append(decision), tables))
    assert letter.error_type == "wrong_schema" and "SizeDecided" in letter.reason


def test_a_bad_record_read_again_gets_the_same_dead_letter_id(codec):
    path, tables, log = make_path(codec), MemoryTables(), Log(codec)
    path.handle(log.append(bar(T0)), tables)
    src = log.append(bar(T0 - timedelta(days=1)))  # out of order
    first = decoded(codec, path.handle(src, tables))
    tables.books.clear()  # as if crashed before any book was written
    path.handle(log.records[0], tables)
    again = decoded(codec, path.handle(src, tables))
    assert first[0].error_type == "out_of_order" and first[0].event_id == again[0].event_id


def test_a_signal_older_than_the_retention_horizon_is_stale(codec):
    path, tables, log = make_path(codec, decided_retention_days=1.0), MemoryTables(), Log(codec)
    path.handle(log.append(signal(T0, signal_id="new")), tables)
    (letter,) = decoded(codec, path.handle(log.append(signal(T0 - timedelta(days=2), signal_id="old")), tables))
    assert letter.error_type == "stale_signal"


class _Fixed:
    version = "fixed-test"

    def __init__(self, m: float) -> None:
        self.m = m
        self.feature_names = ()

    def multiplier(self, features: Any) -> float:  # pragma: no cover - only its presence matters here
        return self.m
