"""The worker's agent loop (``agents.app.run_inputs``) driven in-process: a real app from ``create_app``,
its real tables and input path, a stream of records handed to it as Faust would, no broker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from agents.app import create_app, run_inputs
from config.settings import Settings
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import FeaturesComputed, SizeDecided
from streams.partitioner import partition_for
from streams.topics import subject_for
from tests.unit.agents.market import T0, bar, signal

P = partition_for(b"AAPL", 6)


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int | None]] = []

    def produce_now(self, topic: str, key: bytes, value: bytes, partition: int | None) -> None:
        self.sent.append((topic, key, value, partition))


@pytest.fixture
def worker(tmp_path) -> Any:
    settings = Settings(topic_partitions=6, worker_web_port=0, data_dir=tmp_path, max_future_seconds=0)
    codec = EventCodec(InMemoryRegistry(), subject_for=subject_for)
    app = create_app(settings, worker_id="t", codec=codec)
    worker = app.rlsizer_worker
    worker.path.partitions = lambda: 6
    worker.starts[P] = 0
    worker.rebalance_seen = app.rebalancing_count  # as after the first rebalance's check
    app._producer = Producer()
    return worker


def records(worker: Any, events: list[Any], offsets: list[int]) -> list[Any]:
    topic = worker.inputs
    return [
        SimpleNamespace(
            message=SimpleNamespace(
                topic=topic, partition=P, offset=o, key=e.symbol.encode(), value=worker.codec.encode(topic, e)
            )
        )
        for e, o in zip(events, offsets, strict=True)
    ]


def drive(worker: Any, recs: list[Any]) -> list[Any]:
    class Stream:
        async def events(self):
            for r in recs:
                yield r

    asyncio.run(run_inputs(worker, Stream()))
    return [worker.codec.decode(v) for t, _, v, _ in worker.app._producer.sent if not t.endswith("-changelog")]


def test_records_in_order_are_applied_and_answered(worker):
    events = [bar(T0 - timedelta(days=1)), signal(T0)]
    out = drive(worker, records(worker, events, [0, 1]))
    assert [type(e) for e in out] == [FeaturesComputed, SizeDecided]
    assert worker.store.progress(P) == 1 and worker.store.book("AAPL").offset == 1


def test_a_jump_rewinds_the_consumer_and_nothing_is_applied_until_the_record_due_comes(worker):
    rewound: list[tuple[int, int]] = []

    async def rewind(partition: int, due: int, why: str) -> None:
        rewound.append((partition, due))
        worker.rewinding.add(partition)

    worker.rewind = rewind
    events = [bar(T0 - timedelta(days=2)), signal(T0, signal_id="a"), signal(T0, signal_id="b")]
    recs = records(worker, events, [0, 1, 2])
    out = drive(worker, [recs[0], recs[2], recs[1], recs[2]])  # 1 dropped by the consumer, then re-read
    assert rewound == [(P, 1)]
    assert [e.signal_id for e in out if isinstance(e, SizeDecided)] == ["a", "b"]  # in log order, once each
    assert worker.store.progress(P) == 2


def test_records_read_again_are_skipped(worker):
    events = [bar(T0 - timedelta(days=1)), signal(T0)]
    recs = records(worker, events, [0, 1])
    drive(worker, recs)
    n = len(worker.app._producer.sent)
    drive(worker, recs)  # after a restart the consumer starts before the progress
    assert len(worker.app._producer.sent) == n
