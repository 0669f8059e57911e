"""Replay from the real embedded broker into DuckDB: completeness, idempotence, increments, rejects, rebuilds."""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import fastavro
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from config.settings import Settings
from schemas.catalog import schema_text
from schemas.codec import DecodeError, EventCodec, InMemoryRegistry, frame
from schemas.events import (
    BarClosed,
    Event,
    FeaturesComputed,
    HealthChecked,
    SignalRaised,
    SizeDecided,
    TradeClosed,
    field_names,
)
from streams.topics import CATALOG, ensure_topics, event_key, new_topics, topic_name
from tests.unit.trainer.gc_watch import collected_generations
from trainer.warehouse import replay as replay_module
from trainer.warehouse.replay import ReplayError, assignment, consumer_config, records_ahead, replay
from trainer.warehouse.store import Warehouse, open_warehouse

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


@pytest.fixture()
def codec() -> EventCodec:
    """Shared by the producing and the replaying side."""
    return EventCodec(InMemoryRegistry())


@pytest.fixture()
def topics(settings: Settings) -> Settings:
    """Settings with a fresh topic prefix, its topics created (2 partitions keep it quick)."""
    s = dataclasses.replace(settings, topic_prefix=f"t_{uuid.uuid4().hex[:12]}", topic_partitions=2)
    admin = AdminClient(s.kafka_config())
    ensure_topics(admin, new_topics(s, include_schemas=False))
    return s


def produce(settings: Settings, items: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    producer = Producer({**settings.kafka_config(), "linger.ms": 5})
    errors: list[str] = []
    n = 0
    for topic, key, value in items:
        producer.produce(topic, value, key, on_delivery=lambda err, _m: err and errors.append(str(err)))
        n += 1
    assert producer.flush(30) == 0
    assert not errors, errors
    return n


def encoded(settings: Settings, codec: EventCodec, events: Iterable[Event]) -> list[tuple[str, bytes, bytes]]:
    out = []
    for event in events:
        topic = topic_name(settings, type(event))
        out.append((topic, event_key(event), codec.encode(topic, event)))
    return out


def sample_events(n_signals: int, start: datetime = T0) -> list[Event]:
    events: list[Event] = []
    for i in range(n_signals):
        ts = start + timedelta(minutes=i)
        sid = f"sig-{uuid.uuid4().hex[:8]}"
        symbol = ("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3]
        events += [
            BarClosed(symbol=symbol, interval="1m", open=100, high=101, low=99, close=100.5, volume=10, ts_event=ts),
            SignalRaised(
                signal_id=sid,
                strategy_id="S1",
                symbol=symbol,
                side="BUY",
                price=100.5,
                atr=1.2,
                base_qty=1,
                stop_price=99.0,
                ts_event=ts,
            ),
            FeaturesComputed(
                signal_id=sid,
                symbol=symbol,
                strategy_id="S1",
                strategy_type="EmaCross",
                feature_set="v1",
                features={"rsi": 40.0 + i, "atr_pct": 0.01},
                ts_event=ts,
            ),
            SizeDecided(
                signal_id=sid,
                symbol=symbol,
                strategy_id="S1",
                multiplier=1.0,
                qty=1.0,
                policy="RULES",
                reason="test",
                latency_us=150,
                ts_event=ts,
            ),
            TradeClosed(
                signal_id=sid,
                symbol=symbol,
                strategy_id="S1",
                side="BUY",
                qty=1,
                entry_price=100.5,
                exit_price=102,
                entry_ts=ts,
                exit_ts=ts + timedelta(minutes=5),
                pnl=1.5,
                fees=0.1,
                r_multiple=1.0,
                exit_reason="target",
                ts_event=ts + timedelta(minutes=5),
            ),
        ]
    events.append(HealthChecked(component="trainer", check="replay", status="OK", detail="test", ts_event=start))
    return events


def table_counts(path: Path) -> dict[str, int]:
    with open_warehouse(path) as wh:
        return {t: wh.count(t) for t in ("bars", "signals", "features", "decisions", "outcomes", "health", "dlq")}


def test_replay_reads_everything_once_and_skips_duplicates(topics: Settings, codec: EventCodec, tmp_path: Path) -> None:
    events = sample_events(40)
    records = encoded(topics, codec, events)
    produce(topics, records + records[:30])  # 30 redeliveries of the same events

    stats = replay(topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False)

    assert stats.events == len(records) + 30
    assert stats.new_rows == len(events)
    assert stats.duplicates == 30
    assert stats.rejected == 0
    inputs = topics.topic("inputs")  # bars and signals share it
    assert stats.events_by_topic[inputs] == 80 + sum(1 for t, _, _ in records[:30] if t == inputs)
    counts = table_counts(tmp_path / "wh.duckdb")
    assert counts == {"bars": 40, "signals": 40, "features": 40, "decisions": 40, "outcomes": 40, "health": 1, "dlq": 0}
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        assert sum(wh.offsets().values()) == len(records) + 30  # next offset == end of every partition
        stored = wh.con.execute("SELECT features['rsi'], ts_event FROM features_by_name ORDER BY ts_event").fetchall()
    assert [r[0] for r in stored] == [40.0 + i for i in range(40)]
    assert stored[0][1] == T0.replace(tzinfo=None)  # UTC, naive


def test_records_ahead_counts_from_the_stored_offsets(topics: Settings, codec: EventCodec, tmp_path: Path) -> None:
    """The progress bar's total: records between each partition's start and its watermark (after assign).

    tansu's watermarks can be short of the true end (see ``trainer.warehouse.replay``), so this is a bound, not a count."""
    records = encoded(topics, codec, sample_events(6))
    produce(topics, records)
    consumer = Consumer(consumer_config(topics))
    try:
        names = [topics.topic(spec.short_name) for spec in CATALOG]
        parts = assignment(consumer, names, {}, timeout=10)
        consumer.assign(parts)
        ahead = records_ahead(consumer, parts, timeout=10)
        assert 0 < ahead <= len(records)
        signals = topics.topic("inputs")
        stored = {(signals, 0): 2, (signals, 1): 2}
        later = assignment(consumer, names, stored, timeout=10)
        assert {(tp.topic, tp.partition): tp.offset for tp in later if tp.topic == signals} == stored
        assert records_ahead(consumer, later, timeout=10) <= ahead
    finally:
        consumer.close()

    stats = replay(
        topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=True
    )  # the bar's path reads everything too
    assert stats.events == stats.new_rows == len(records)


def test_second_replay_adds_only_new_events(topics: Settings, codec: EventCodec, tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    produce(topics, encoded(topics, codec, sample_events(10)))
    first = replay(topics, codec, warehouse_path=path, progress=False)
    assert first.new_rows == 51

    again = replay(topics, codec, warehouse_path=path, progress=False)
    assert again.events == 0 and again.new_rows == 0

    later = sample_events(7, start=T0 + timedelta(days=1))
    produce(topics, encoded(topics, codec, later))
    third = replay(topics, codec, warehouse_path=path, progress=False)
    assert third.events == len(later)
    assert third.new_rows == len(later)
    assert third.duplicates == 0
    assert table_counts(path)["signals"] == 17


def test_a_new_file_is_assigned_before_it_is_made(
    topics: Settings, codec: EventCodec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into a new file the partitions are assigned from the beginning while the file is made (fetching starts)."""
    produce(topics, encoded(topics, codec, sample_events(5)))
    seen: list[str] = []
    real_open, real_assign = replay_module.open_warehouse, Consumer.assign

    def slow_open(*args: object, **kwargs: object) -> Warehouse:
        time.sleep(0.5)  # a file that takes long to make
        seen.append("opened")
        return real_open(*args, **kwargs)

    class Watched(Consumer):
        def assign(self, partitions: list[TopicPartition]) -> None:
            seen.append(f"assigned {len(partitions)}")
            real_assign(self, partitions)

    monkeypatch.setattr(replay_module, "open_warehouse", slow_open)
    monkeypatch.setattr(replay_module, "Consumer", Watched)
    stats = replay(topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False)

    assert [step.split()[0] for step in seen] == ["assigned", "opened"]
    assert int(seen[0].split()[1]) >= len(CATALOG)  # every catalogue topic's partitions
    assert stats.new_rows == 26 and table_counts(tmp_path / "wh.duckdb")["signals"] == 5


def test_each_partition_is_paused_once_at_its_end(
    topics: Settings, codec: EventCodec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition at EOF is no longer fetched while the others are read."""
    produce(topics, encoded(topics, codec, sample_events(30)))
    assigned: list[tuple[str, int]] = []
    paused: list[tuple[str, int]] = []

    class Watched(Consumer):
        def assign(self, partitions: list[TopicPartition]) -> None:
            assigned.extend((tp.topic, tp.partition) for tp in partitions)
            super().assign(partitions)

        def pause(self, partitions: list[TopicPartition]) -> None:
            paused.extend((tp.topic, tp.partition) for tp in partitions)
            super().pause(partitions)

    monkeypatch.setattr(replay_module, "Consumer", Watched)
    stats = replay(topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False)

    assert stats.new_rows == 151
    assert sorted(paused) == sorted(assigned) and len(set(paused)) == len(paused)


def test_a_file_made_meanwhile_is_read_from_its_stored_offsets(
    topics: Settings, codec: EventCodec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found missing, then made by another replay before ours opens it: ours reads on from its offsets."""
    path = tmp_path / "wh.duckdb"
    produce(topics, encoded(topics, codec, sample_events(5)))
    assert replay(topics, codec, warehouse_path=path, progress=False).new_rows == 26
    later = sample_events(3, start=T0 + timedelta(days=1))
    produce(topics, encoded(topics, codec, later))
    real_exists, asked = Path.exists, []

    def exists(self: Path) -> bool:  # the replay's first look finds nothing; the file is there when it opens it
        if self == path and not asked:
            asked.append(self)
            return False
        return real_exists(self)

    consumers: list[list[int]] = []  # per consumer made: the offsets it was assigned

    class Watched(Consumer):
        def __init__(self, config: dict[str, object]) -> None:
            super().__init__(config)
            consumers.append([])

        def assign(self, partitions: list[TopicPartition]) -> None:
            consumers[-1].extend(tp.offset for tp in partitions)
            super().assign(partitions)

    monkeypatch.setattr(Path, "exists", exists)
    monkeypatch.setattr(replay_module, "Consumer", Watched)

    stats = replay(topics, codec, warehouse_path=path, progress=False)

    assert asked and stats.rebuilt_from is None
    # the first consumer, assigned from the beginning, is closed unread; a second reads on from the stored offsets
    assert (
        len(consumers) == 2 and set(consumers[0]) == {OFFSET_BEGINNING} and any(offset > 0 for offset in consumers[1])
    )
    assert stats.events == len(later) and stats.new_rows == len(later) and stats.duplicates == 0
    assert table_counts(path)["signals"] == 8


def test_a_registry_that_does_not_answer_stops_the_replay_without_losing_a_record(
    topics: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    """An outside audit saw a registry outage (401) turn every record into an ``unknown_schema`` dead letter
    with its offset passed, so the next replay added nothing. Now the replay stops and the next one reads them."""
    good = encoded(topics, codec, sample_events(5))
    produce(topics, good)

    class Away:  # a registry that cannot be asked (refused credentials, unreachable, 5xx)
        def register(self, subject: str, schema: str) -> int:
            raise ConnectionError("registry unreachable")

        def schema_by_id(self, schema_id: int) -> str:
            raise ConnectionError("registry unreachable")

    with pytest.raises(ReplayError) as info:
        replay(topics, EventCodec(Away()), warehouse_path=tmp_path / "wh.duckdb", progress=False)
    assert "registry did not answer" in str(info.value) and "reads them again" in str(info.value)

    stats = replay(topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False)
    assert stats.rejected == 0 and stats.new_rows == len(good)
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        assert wh.count("signals") == 5 and wh.count("dlq") == 0


def test_undecodable_records_are_dead_lettered_and_replay_goes_on(
    topics: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    signals = topics.topic("inputs")
    good = encoded(topics, codec, sample_events(5))
    bad = [(signals, b"k1", b"not avro at all"), (signals, b"k2", frame(987_654, b"\x02\x04")), (signals, b"k3", b"")]
    produce(topics, good[:10] + bad + good[10:])

    stats = replay(topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False)

    assert stats.rejected == 3
    assert stats.new_rows == len(good) + 3
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        rows = wh.con.execute(
            "SELECT source_topic, raw_key, raw_value, error_type FROM dlq ORDER BY raw_key"
        ).fetchall()
        assert wh.count("signals") == 5
    assert [(r[0], r[1], r[2]) for r in rows] == [(signals, k, v) for _, k, v in bad]
    assert rows[1][3] == "unknown_schema"
    # dead letters have stable ids: a forced full rebuild stores them once again, not twice
    rebuilt = replay(topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False, rebuild=True)
    assert rebuilt.rejected == 3 and table_counts(tmp_path / "wh.duckdb")["dlq"] == 3


def _assert_rebuilt(
    topics: Settings, codec: EventCodec, path: Path, caplog: pytest.LogCaptureFixture, expected: dict[str, int]
) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer.warehouse.store"):
        stats = replay(topics, codec, warehouse_path=path, progress=False)
    assert stats.rebuilt_from is not None
    assert table_counts(path) == expected
    moved = list(path.parent.glob(f"{path.name}.bad-*"))
    assert len([m for m in moved if not m.name.endswith(".wal")]) == 1
    assert any("rebuilding from Kafka" in r.getMessage() for r in caplog.records)


def test_corrupt_warehouse_is_moved_aside_and_rebuilt(
    topics: Settings, codec: EventCodec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "wh.duckdb"
    produce(topics, encoded(topics, codec, sample_events(6)))
    assert replay(topics, codec, warehouse_path=path, progress=False).rebuilt_from is None
    expected = table_counts(path)
    path.write_bytes(b"\x00garbage, not a duckdb file" * 100)

    _assert_rebuilt(topics, codec, path, caplog, expected)


@pytest.mark.parametrize("damage", ["no_schema_version", "unfinished_marker", "previous_schema_version"])
def test_half_written_warehouse_is_rebuilt(
    topics: Settings, codec: EventCodec, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = tmp_path / "wh.duckdb"
    produce(topics, encoded(topics, codec, sample_events(6)))
    replay(topics, codec, warehouse_path=path, progress=False)
    expected = table_counts(path)
    con = duckdb.connect(str(path))
    if damage == "no_schema_version":
        con.execute("DELETE FROM meta WHERE key = 'schema_version'")
    elif damage == "previous_schema_version":  # written by older code (features as a MAP column): rebuilt, not read
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    else:
        con.execute("UPDATE meta SET value = 'building' WHERE key = 'state'")
    con.execute("DELETE FROM signals")  # the half-written file lost rows; a rebuild restores them
    con.close()

    _assert_rebuilt(topics, codec, path, caplog, expected)


def test_small_flushes_and_invalid_values_keep_every_record_and_its_reason(
    topics: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    """Many transactions (the writer thread overlaps them with decoding); a valid-Avro, invalid-value
    record lands in dlq with the reason EventCodec.decode gives, between good records of one batch."""
    decisions = topics.topic("decisions")
    good = encoded(topics, codec, sample_events(30))
    refused_decision = SizeDecided(
        signal_id="sig-x",
        symbol="BTCUSDT",
        strategy_id="S1",
        multiplier=1.0,
        qty=1.0,
        policy="RULES",
        reason="test",
        latency_us=1,
        ts_event=T0,
    )
    record = {name: getattr(refused_decision, name) for name in field_names(SizeDecided)} | {
        "multiplier": 7.5
    }  # outside [0.25, 2.0]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(schema_text(SizeDecided))), record)
    invalid = frame(codec.schema_id(decisions, SizeDecided), buf.getvalue())
    with pytest.raises(DecodeError) as refused:
        codec.decode(invalid)
    produce(topics, [*good[:70], (decisions, b"bad", invalid), *good[70:]])

    with collected_generations() as generations:
        stats = replay(
            topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False, flush_rows=17, batch_size=13
        )

    assert gc.isenabled()
    assert generations and max(generations) == 1  # young collections after flushes; no walk of the whole heap
    assert stats.events == len(good) + 1
    assert stats.new_rows == len(good) + 1 and stats.duplicates == 0 and stats.rejected == 1
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        assert sum(wh.offsets().values()) == len(good) + 1
        assert wh.count("decisions") == 30 and wh.count("features") == 30
        assert wh.con.execute("SELECT error_type, reason, raw_value FROM dlq").fetchall() == [
            ("invalid_value", str(refused.value), invalid)
        ]
        assert wh.con.execute(
            "SELECT count(*) FROM decisions WHERE event_id = ?", [refused_decision.event_id]
        ).fetchone() == (0,)
    again = replay(topics, codec, warehouse_path=tmp_path / "wh.duckdb", progress=False, flush_rows=17)
    assert again.events == 0 and again.new_rows == 0


def test_a_failed_write_surfaces_and_nothing_after_it_commits(tmp_path: Path) -> None:
    """The background writer: batch 1 commits, batch 2 fails, batch 3 must not commit (offsets stay contiguous)."""
    from collections import Counter

    from trainer.warehouse.replay import _Batch, _Writer

    class FailingSecondWrite(Warehouse):
        calls = 0

        def write(self, batches, offsets):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("disk full")
            return super().write(batches, offsets)

    with open_warehouse(tmp_path / "wh.duckdb") as opened:
        warehouse = FailingSecondWrite(opened.path, opened.con, rebuilt_from=None)
        writer = _Writer(warehouse)
        for n in (1, 2, 3):
            batch = _Batch(
                tables={},
                offsets={("t", 0): n},
                events_by_topic=Counter({"t": 1}),
                rejected=0,
                tombstones=0,
                decode_seconds=0.0,
            )
            try:
                writer.submit(batch)
            except RuntimeError:
                break
        with pytest.raises(RuntimeError, match="disk full"):
            writer.drain()
        assert warehouse.offsets() == {("t", 0): 1}
        assert writer.totals.events_by_topic == Counter({"t": 1})
