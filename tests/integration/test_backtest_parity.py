"""Live equals replay on the real stack, with the reference adapter at full speed.

A worker process (``rlsizer worker``) sizes the signals of two symbols streamed at the same
time by the reference adapter through the SDK -- exits and new signals on the same bars,
nothing waiting for the worker but the decisions the adapter itself asks for. The rules
decide first; then a model is published as champion and hot-swapped while a third symbol
and one of the first two stream on. ``rlsizer backtest --check-parity`` then replays the
window from Kafka and finds every live feature, multiplier and policy again.

And the same stream, run three times on fresh topics, gives the same live features,
multiplier, policy and reason for every signal: a decision is a function of the log.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from agents.features import FEATURE_NAMES, FEATURE_SET
from config.settings import Settings
from models.manifest import ManifestDraft, TensorSpec
from models.registry import ModelRegistry
from rlsizer.cli import build_parser
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, Runner
from rlsizer.stack.processes import ManagedProcess
from rlsizer.stack.services import start_worker
from schemas.codec import EventCodec
from schemas.events import FeaturesComputed, SizeDecided
from streams.adapter_sdk import AdapterClient
from streams.codec_factory import make_codec
from streams.consumer import make_consumer
from streams.end_offsets import end_offsets
from streams.producer import EventProducer, make_producer
from streams.topics import ensure_topics, new_topics
from tests.unit.trainer.backtest_live import tiny_model

pytestmark = pytest.mark.integration


def fresh(settings: Settings, tmp_path: Path, tag: str = "") -> Settings:
    name = f"lr{tag}{uuid.uuid4().hex[:6]}"
    s = replace(
        settings,
        topic_prefix=name,
        topic_partitions=2,
        worker_web_port=0,
        data_dir=tmp_path / name,
        decision_timeout_ms=5000,
        model_name=name,
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    return s


@pytest.fixture
def worker_for(tmp_path: Path) -> Iterator[Any]:
    started: list[ManagedProcess] = []

    def start(s: Settings) -> ManagedProcess:
        started.append(start_worker(s, worker_id="0"))
        return started[-1]

    yield start
    for proc in started:
        proc.stop(timeout=20)


def stream(s: Settings, codec: EventCodec, plan: list[tuple[str, int, int]], *, run_id: str = "lr") -> None:
    """Each ``(symbol, first bar, last bar)`` streamed by its own adapter thread, all at once, at full speed."""
    errors: list[BaseException] = []

    def one(symbol: str, first: int, last: int, runner_cache: dict[str, Runner]) -> None:
        try:
            with AdapterClient(s, codec, adapter_name="reference", default_timeout_s=10.0) as client:
                runner = runner_cache.get(symbol)
                if runner is None:
                    cfg = RunConfig(symbol=symbol, interval="1d", run_id=run_id, timeout_s=10.0)
                    runner = runner_cache[symbol] = Runner(load_dataset(symbol).iloc[:600], cfg, client)
                runner.port = client
                runner.advance(last, progress=False)
                assert runner.t == last and runner.summary.timeouts == 0, runner.summary
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=(sym, a, b, RUNNERS.setdefault(s.topic_prefix, {}))) for sym, a, b in plan
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors


RUNNERS: dict[str, dict[str, Runner]] = {}  # per topic prefix: runners continue where they stopped


def whole(s: Settings, codec: EventCodec, short: str) -> list[Any]:
    """Every event of a topic, to its true end."""
    topic = s.topic(short)
    consumer = make_consumer(s, f"lr-{uuid.uuid4().hex[:6]}", **{"enable.partition.eof": True})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = end_offsets(s.kafka_config(), [(topic, p) for p in parts])
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out, seen = [], {p: 0 for p in parts}
        deadline = time.monotonic() + 30
        while any(seen[p] < ends[(topic, p)] for p in parts) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    seen[msg.partition()] = msg.offset() + 1
                    out.append(codec.decode(msg.value()))
                elif msg.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(msg.error().str())
        return out
    finally:
        consumer.close()


def publish_model(s: Settings) -> str:
    onnx = tiny_model(seed=11)
    d = len(FEATURE_NAMES)
    draft = ManifestDraft(
        feature_set=FEATURE_SET,
        feature_names=FEATURE_NAMES,
        inputs=(TensorSpec(name="features", dtype="float32", shape=("batch", d)),),
        outputs=(TensorSpec(name="multiplier", dtype="float32", shape=("batch",)),),
        metrics={},
        data_from=datetime(2000, 1, 1, tzinfo=UTC),
        data_to=datetime(2000, 2, 1, tzinfo=UTC),
        run_name="parity",
    )
    published = ModelRegistry.from_settings(s).publish(onnx, draft, alias="champion")
    producer = EventProducer(make_producer(s), make_codec(s), s)
    producer.send(published.event)  # the workers re-read the signed champion alias and swap
    producer.flush()
    return published.manifest.version


def test_live_equals_rlsizer_backtest_with_the_reference_adapter_at_full_speed(settings, tmp_path, worker_for, capsys):
    s = fresh(settings, tmp_path)
    codec = make_codec(s)
    worker_for(s)
    stream(s, codec, [("IBM", 0, 260), ("MSFT", 0, 260)])  # the rules decide
    version = publish_model(s)
    time.sleep(3.0)  # the swap lands somewhere in what follows: each decision records who made it
    stream(s, codec, [("AAPL", 0, 220), ("IBM", 260, 420)])
    decisions = [e for e in whole(s, codec, "decisions") if isinstance(e, SizeDecided)]
    by_policy = {d.model_version for d in decisions}
    assert None in by_policy and version in by_policy, by_policy  # rules, then the model

    start = min(d.ts_event for d in decisions) - timedelta(days=1)
    end = max(d.ts_event for d in decisions) + timedelta(days=1)
    args = build_parser().parse_args(
        [
            "backtest",
            "--from",
            start.isoformat(),
            "--to",
            end.isoformat(),
            "--policy",
            "fixed,live",
            "--check-parity",
            "--bootstrap",
            "20",
        ]
    )
    assert args.func(args, s) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    n = len({d.signal_id for d in decisions})
    assert f"parity: {n} decisions compared, max |diff| 0, 0 multipliers and 0 policies differ" in out, out
    assert f"features: {n} signals compared, 0 feature(s) differ" in out, out
    assert re.search(rf"model {re.escape(version)} \d", out) and re.search(r"rules \d", out), out


def test_the_same_stream_gives_the_same_live_decisions_every_time(settings, tmp_path, worker_for):
    runs = []
    for i in range(3):
        s = fresh(settings, tmp_path, tag=str(i))
        codec = make_codec(s)
        worker = worker_for(s)
        stream(s, codec, [("IBM", 0, 200), ("MSFT", 0, 200)], run_id="same")
        events = whole(s, codec, "features") + whole(s, codec, "decisions")
        worker.stop(timeout=20)
        features = {e.signal_id: dict(e.features) for e in events if isinstance(e, FeaturesComputed)}
        decided = {
            e.signal_id: (e.multiplier, e.policy, e.reason, e.model_version)
            for e in events
            if isinstance(e, SizeDecided)
        }
        assert len(decided) > 50 and features.keys() == decided.keys()
        runs.append((features, decided))
    for features, decided in runs[1:]:
        assert decided == runs[0][1]
        assert features == runs[0][0]
    assert len({m for m, *_ in runs[0][1].values()}) > 3  # the account and history features moved the sizes
    signals = sum(1 for f in runs[0][0].values() if f["acct_open_risk_r"] > 0 or f["strat_n_trades"] > 0)
    assert signals > 10
