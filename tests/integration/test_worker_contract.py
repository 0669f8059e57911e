"""The worker on the real embedded broker: bad input is dead-lettered, every signal gets
exactly one decision, across SIGKILL and rebalance. Workers run as subprocesses
(``python -m agents.worker``), each test on its own topic prefix.

The broker here is tansu with *memory* storage (SeaweedFS still runs for the model
registry): the contract concerns worker crashes and rebalances, not broker
durability, and on this shared 2-core machine the S3-backed broker's produce/fetch
latency under load (hundreds of ms per request) would make the tests measure
SeaweedFS instead of the worker. Broker restarts with S3 storage are covered by
``test_stack.py``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import pytest
from confluent_kafka.admin import AdminClient

from config.settings import ENV_PREFIX, Settings
from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from schemas.catalog import schema_text
from schemas.codec import EventCodec, frame
from schemas.events import EventRejected, OrderFilled, SignalRaised, SizeDecided, TradeClosed, utc_now
from streams.codec_factory import make_codec
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.topics import ensure_topics, new_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def settings_env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({ENV_PREFIX + f.name.upper(): str(getattr(s, f.name)) for f in fields(s)})
    return env


@pytest.fixture(scope="module")
def mem_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("worker-stack"), ports=StackPorts.free(), memory=True) as running:
        yield running


@pytest.fixture
def wsettings(mem_stack: EmbeddedStack, tmp_path: Path) -> Settings:
    s = replace(
        mem_stack.settings,
        topic_prefix=f"w{uuid.uuid4().hex[:8]}",
        topic_partitions=3,
        worker_web_port=0,
        data_dir=tmp_path,
        decision_timeout_ms=500,
    )
    admin = AdminClient(s.kafka_config())
    ensure_topics(admin, new_topics(s, include_schemas=False))
    return s


class Workers:
    def __init__(self, s: Settings, log_dir: Path) -> None:
        self.s, self.log_dir, self.procs, self.stopped = s, log_dir, {}, set()

    def start(self, wid: str) -> subprocess.Popen:
        with open(self.log_dir / f"worker-{wid}.log", "ab") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "agents.worker", "--id", wid, "--loglevel", "info"],
                cwd=ROOT,
                env=settings_env(self.s),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[wid] = proc
        return proc

    def stop(self, wid: str) -> None:
        self.stopped.add(wid)
        self.procs[wid].terminate()

    def kill(self, wid: str) -> None:
        self.stopped.add(wid)
        self.procs[wid].send_signal(signal.SIGKILL)
        self.procs[wid].wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def check_alive(self) -> None:
        dead = [w for w, p in self.procs.items() if p.poll() is not None and w not in self.stopped]
        assert not dead, f"worker(s) {dead} exited:\n{self.logs()}"

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in self.log_dir.glob("worker-*.log"))


@pytest.fixture
def workers(wsettings: Settings, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(wsettings, tmp_path)
    yield w
    w.stop_all()


def make_signal(
    i: int, *, symbol: str | None = None, strategy: str = "S1", signal_id: str | None = None
) -> SignalRaised:
    return SignalRaised(
        ts_event=T0 + timedelta(seconds=i),
        signal_id=signal_id or f"sig-{i}",
        strategy_id=strategy,
        symbol=symbol or f"SYM{i % 7}",
        side="BUY",
        price=100.0 + i % 13,
        atr=1.5,
        base_qty=10.0,
    )


class Decisions:
    """Reads the decisions and dlq topics from the beginning."""

    def __init__(self, s: Settings, codec: EventCodec) -> None:
        self.s, self.codec = s, codec
        self.consumer = make_consumer(s, f"check-{uuid.uuid4().hex[:6]}")
        self.consumer.subscribe([s.topic("decisions"), s.topic("dlq")])
        self.multipliers: dict[str, set[float]] = {}
        self.count: dict[str, int] = {}
        self.rejected: list[EventRejected] = []

    def drain(self, until: float, want: set[str] | None = None, want_rejected: int = 0, workers=None) -> None:
        while time.monotonic() < until:
            if workers is not None:
                workers.check_alive()
            for msg in self.consumer.consume(1000, 0.2):
                if msg.error():
                    continue
                event = self.codec.decode(msg.value())
                if isinstance(event, SizeDecided):
                    self.multipliers.setdefault(event.signal_id, set()).add(event.multiplier)
                    self.count[event.signal_id] = self.count.get(event.signal_id, 0) + 1
                elif isinstance(event, EventRejected):
                    self.rejected.append(event)
            if want is not None and want <= self.multipliers.keys() and len(self.rejected) >= want_rejected:
                return


@pytest.fixture
def codec(wsettings: Settings) -> EventCodec:
    return make_codec(wsettings)


def test_bad_input_is_dead_lettered_and_duplicates_get_the_same_decision(wsettings, workers, codec):
    producer = EventProducer(make_producer(wsettings), codec, wsettings)
    signals_topic = wsettings.topic("inputs")
    workers.start("1")
    good = [make_signal(i) for i in range(20)]
    for sig in good:
        producer.send(sig)
    producer.send(good[3])  # duplicate signal_id
    producer.send(make_signal(99, strategy="NOPE"))  # unknown strategy
    producer.send_raw(signals_topic, b"SYM1", b"\x00\x01")  # too short for framing
    producer.send_raw(signals_topic, b"SYM1", frame(999_999, b"xx"))  # unknown schema id
    sid = codec.schema_id(signals_topic, SignalRaised)
    record = {
        f: getattr(good[0], f)
        for f in (
            "event_id",
            "ts_event",
            "ts_init",
            "signal_id",
            "strategy_id",
            "symbol",
            "side",
            "price",
            "atr",
            "score",
            "q_score",
            "base_qty",
            "stop_price",
            "target_price",
            "adapter",
        )
    }
    record.update(attrs={}, price=float("nan"), signal_id="nan-price")
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(__import__("json").loads(schema_text(SignalRaised))), record)
    producer.send_raw(signals_topic, b"SYM1", frame(sid, body.getvalue()))
    producer.flush()

    seen = Decisions(wsettings, codec)
    seen.drain(time.monotonic() + 45, want={s.signal_id for s in good}, want_rejected=4, workers=workers)
    assert {s.signal_id for s in good} <= seen.multipliers.keys(), workers.logs()
    assert "sig-99" not in seen.multipliers and "nan-price" not in seen.multipliers
    assert all(len(m) == 1 for m in seen.multipliers.values())
    seen.drain(time.monotonic() + 1.5)
    assert seen.count["sig-3"] == 2  # the duplicate got the stored decision again
    kinds = sorted(r.error_type for r in seen.rejected)
    assert kinds == ["invalid_value", "malformed", "unknown_schema", "unknown_strategy"], [
        r.reason for r in seen.rejected
    ]
    assert all(r.source_topic == signals_topic and r.raw_value for r in seen.rejected)


def _topic_records(s: Settings, topic: str) -> list:
    """Every record of ``topic`` (tombstones included): each partition read from its start to its end
    (partition EOF), on a plain assignment (no consumer group)."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    consumer = make_consumer(s, f"all-{uuid.uuid4().hex[:6]}", **{"enable.partition.eof": True})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        records, ended = [], set()
        deadline = time.monotonic() + 30
        while len(ended) < len(parts) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        ended.add(msg.partition())
                    continue
                records.append(msg)
        assert len(ended) == len(parts), f"{topic} partitions not read to their end: {sorted(set(parts) - ended)}"
        return records
    finally:
        consumer.close()


def _outcomes(s: Settings, codec: EventCodec, signal_id: str) -> list[TradeClosed]:
    out = [codec.decode(m.value()) for m in _topic_records(s, s.topic("outcomes"))]
    return [e for e in out if isinstance(e, TradeClosed) and e.signal_id == signal_id]


def _stale_letters(seen: Decisions, codec: EventCodec) -> list[str]:
    """The signal ids of the stale-signal dead letters seen so far, in order."""
    return [codec.decode(r.raw_value).signal_id for r in seen.rejected if r.error_type == "stale_signal"]


def _changelog_values(s: Settings, key: bytes, table: str = "decided") -> list[bytes | None]:
    """Every value of ``key`` in ``table``'s changelog, oldest first."""
    from streams.topics import worker_group_id

    return [msg.value() for msg in _topic_records(s, f"{worker_group_id(s)}-{table}-changelog") if msg.key() == key]


def test_decided_signals_expire_after_the_retention_and_a_repeat_then_is_refused_not_decided_again(
    wsettings, workers, codec
):
    """``RLSIZER_DECIDED_RETENTION_DAYS=1``: a signal more than a day (event time) older than its symbol's
    latest decided one is forgotten (tombstoned), with its closed trade; coming back, it is dead-lettered as
    stale, also after a restart that recovers the table -- and reads every input again, the group's offsets
    lost: what the books applied is recognised, nothing is decided, sent or dead-lettered a second time."""
    s = replace(wsettings, decided_retention_days=1.0)
    workers.s = s
    producer = EventProducer(make_producer(s), codec, s)
    seen = Decisions(s, codec)

    def sig(sid: str, days: float) -> SignalRaised:
        return replace(make_signal(0, symbol="RET", signal_id=sid), ts_event=T0 + timedelta(days=days))

    def fill(leg: str, hours: float) -> OrderFilled:
        return OrderFilled(
            ts_event=T0 + timedelta(hours=hours),
            signal_id="old",
            order_id=f"o-{leg}",
            symbol="RET",
            side="BUY" if leg == "ENTRY" else "SELL",
            qty=10.0,
            price=101.0,
            leg=leg,
        )

    old, new = sig("old", 0), sig("new", 2)
    workers.start("1")
    producer.send(old)
    producer.flush()
    seen.drain(time.monotonic() + 40, want={"old"}, workers=workers)
    assert "old" in seen.multipliers, workers.logs()
    exit_fill = fill("EXIT", 5)
    for event in (fill("ENTRY", 1), exit_fill):  # the trade closes before "new" makes "old" expire
        producer.send(event)
    producer.flush()
    deadline = time.monotonic() + 30
    while not _outcomes(s, codec, "old") and time.monotonic() < deadline:
        workers.check_alive()
        time.sleep(0.2)
    assert _outcomes(s, codec, "old"), workers.logs()
    producer.send(new)
    producer.flush()
    seen.drain(time.monotonic() + 30, want={"new"}, workers=workers)

    # "ahead" (a bot's clock 10 years off) is refused on sight: accepted, it would make "fresh" stale
    ahead = replace(sig("ahead", 0), ts_event=utc_now() + timedelta(days=3650))
    for event in (old, new, sig("older", -5), ahead, sig("fresh", 2.05), exit_fill):  # "fresh" overtakes "older"
        producer.send(event)
    producer.flush()
    seen.drain(time.monotonic() + 30, want={"fresh"}, want_rejected=4, workers=workers)
    assert seen.count == {"old": 1, "new": 2, "fresh": 1}, (seen.count, workers.logs())
    assert sorted(_stale_letters(seen, codec)) == ["old", "older"]
    orphan = [r.reason for r in seen.rejected if r.error_type == "orphan_fill"]
    assert len(orphan) == 1 and "RLSIZER_DECIDED_RETENTION_DAYS" in orphan[0]  # the trade went with its decision
    reason = next(r.reason for r in seen.rejected if r.error_type == "stale_signal")
    assert "RET" in reason and "RLSIZER_DECIDED_RETENTION_DAYS" in reason
    assert "older" not in seen.count
    future = [r for r in seen.rejected if r.error_type == "future_timestamp"]
    assert len(future) == 1 and "ahead" not in seen.count, (future, seen.count)
    assert codec.decode(future[0].raw_value).signal_id == "ahead"
    values = _changelog_values(s, b"old")
    assert len(values) == 3 and values[0] and values[1] and values[2] is None  # decided, closed, then a tombstone
    assert _changelog_values(s, b"new")[-1] is not None

    workers.stop("1")
    workers.procs["1"].wait(30)
    _rewind_group_to_start(s)  # and the group's offsets lost: worker 2 reads every input again
    workers.start("2")  # recovers the tables from their changelogs: "old" stays forgotten, "new" remembered
    for event in (old, new, sig("fresh2", 2.1)):
        producer.send(event)
    producer.flush()
    seen.drain(time.monotonic() + 45, want={"fresh2"}, want_rejected=3, workers=workers)
    # the inputs read again were recognised as applied: nothing decided, sent or dead-lettered again
    assert seen.count == {"old": 1, "new": 3, "fresh": 1, "fresh2": 1}, (seen.count, workers.logs())
    kinds = sorted(r.error_type for r in seen.rejected)
    assert kinds == ["future_timestamp", "orphan_fill", "stale_signal", "stale_signal", "stale_signal"], kinds
    assert sorted(_stale_letters(seen, codec)) == ["old", "old", "older"]
    assert all(len(m) == 1 for m in seen.multipliers.values())


def _rewind_group_to_start(s: Settings) -> None:
    """Commit offset 0 on every input partition for the workers' group, as if its offsets were lost (a broker
    restart can do it): the next worker reads every input again."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.topics import worker_group_id

    topic = s.topic("inputs")
    rewind = Consumer(
        {**s.kafka_config(), "group.id": worker_group_id(s), "enable.auto.commit": False, "session.timeout.ms": 6000}
    )
    try:  # as a member of the group: tansu takes commits from members only
        parts = rewind.list_topics(topic, timeout=10).topics[topic].partitions
        rewind.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(rewind.assignment()) < len(parts) and time.monotonic() < deadline:
            rewind.poll(0.2)
        rewind.commit(offsets=[TopicPartition(topic, p, 0) for p in parts], asynchronous=False)
        assert all(tp.offset == 0 for tp in rewind.committed([TopicPartition(topic, p) for p in parts], timeout=10))
    finally:
        rewind.close()
