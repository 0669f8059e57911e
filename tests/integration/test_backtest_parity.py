"""Live/replay parity on the real stack: a worker subprocess with a registry model sizes AAPL signals
driven by the reference adapter loop; a backtest of that window with that version reproduces every
live multiplier within 1e-6 and every recorded feature.

The worker's bars, outcomes and signals agents run concurrently, so a signal can be decided before
the worker applied the bar (or outcome) published just before it. The driver therefore waits, before
each batch of signals, until the worker's table changelogs show the bar and outcomes applied: the
order the backtest replays (see trainer.backtest_events). Without that wait, live features differ
from the point-in-time ones by a race, which check_parity reports per feature with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.admin import AdminClient

from agents.features import FEATURE_NAMES, FEATURE_SET, SymbolState
from agents.state import AccountState
from agents.strategy_map import StrategyMap
from agents.timestamps import to_micros
from models.manifest import ManifestDraft, TensorSpec
from models.registry import ModelRegistry
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, run
from schemas.codec import EventCodec
from schemas.events import BarClosed, OrderFilled, SignalRaised, SizeDecided
from schemas.registry_client import HttpSchemaRegistry
from streams.adapter_sdk import AdapterClient
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.settings import ENV_PREFIX, Settings
from streams.topics import ensure_topics, new_topics
from tests.unit.trainer.backtest_live import OutcomeTracker, tiny_model
from trainer.backtest import model_policy, run_policy
from trainer.backtest_events import load_history
from trainer.backtest_parity import check_parity
from trainer.replay import replay

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BARS = 300


def settings_env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({ENV_PREFIX + f.name.upper(): str(getattr(s, f.name)) for f in fields(s)})
    return env


@pytest.fixture
def psettings(settings: Settings, tmp_path: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    s = replace(settings, topic_prefix=f"bt{tag}", topic_partitions=1, worker_web_port=0, data_dir=tmp_path,
                decision_timeout_ms=5000, model_name=f"bt-{tag}")
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    return s


@pytest.fixture
def worker(psettings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen]:
    log = open(tmp_path / "worker.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "agents.worker", "--id", "p1", "--loglevel", "info"], cwd=ROOT,
                            env=settings_env(psettings), stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def publish_model(s: Settings, codec: EventCodec, tmp_path: Path) -> str:
    """The tiny model in the registry (verified copy for the backtest) and announced to the worker."""
    onnx = tiny_model(seed=11)
    d = len(FEATURE_NAMES)
    draft = ManifestDraft(
        feature_set=FEATURE_SET, feature_names=FEATURE_NAMES,
        inputs=(TensorSpec(name="features", dtype="float32", shape=("batch", d)),),
        outputs=(TensorSpec(name="multiplier", dtype="float32", shape=("batch",)),),
        metrics={}, data_from=datetime(2000, 1, 1, tzinfo=timezone.utc), data_to=datetime(2000, 2, 1, tzinfo=timezone.utc),
        run_name="parity",
    )
    published = ModelRegistry.from_settings(s).publish(onnx, draft, alias="champion")
    # the worker fetches and verifies this version from the registry (agents.glue.verified_models)
    producer = EventProducer(make_producer(s), codec, s)
    producer.send(published.event)
    producer.flush()
    return published.manifest.version


class TableWatch:
    """Follows the worker's table changelogs: which bars and outcomes it has applied."""

    def __init__(self, s: Settings) -> None:
        app = f"{s.topic_prefix}-worker"
        self.topics = {f"{app}-symbol-state-changelog": "bars", f"{app}-account-changelog": "account"}
        self.consumer = make_consumer(s, f"watch-{uuid.uuid4().hex[:6]}", **{"fetch.wait.max.ms": 10})
        self.assigned = False
        self.last_bar: dict[str, int] = {}
        self.closed: set[str] = set()

    def _assign(self) -> bool:
        meta = self.consumer.list_topics(timeout=5).topics
        if not all(t in meta for t in self.topics):
            return False
        self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in self.topics for p in meta[t].partitions])
        self.assigned = True
        return True

    def wait(self, bar: BarClosed | None, outcomes: set[str], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if (bar is None or self.last_bar.get(bar.symbol, -1) >= to_micros(bar.ts_event)) and outcomes <= self.closed:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not apply bar {bar and bar.ts_event} / outcomes {outcomes - self.closed} in {timeout}s")
            if not self.assigned and not self._assign():
                time.sleep(0.05)
                continue
            for msg in self.consumer.consume(500, 0.02):
                if msg.error() or msg.value() is None:
                    continue
                if self.topics[msg.topic()] == "bars":
                    self.last_bar[msg.key().decode()] = SymbolState.from_bytes(msg.value()).last_ts_us or -1
                else:
                    self.closed |= {t.signal_id for t in AccountState.from_bytes(msg.value()).closed}


class SyncedPort:
    """The adapter SDK, plus outcomes from fills, plus a wait for the worker's state before each signal batch."""

    def __init__(self, client: AdapterClient, producer: EventProducer, watch: TableWatch) -> None:
        self.client, self.producer, self.watch = client, producer, watch
        self.tracker = OutcomeTracker()
        self.last_bar: BarClosed | None = None
        self.outcomes: set[str] = set()
        self.decisions: dict[str, SizeDecided] = {}

    def publish_bar(self, bar: BarClosed) -> None:
        self.client.publish_bar(bar)
        self.tracker.on_bar(bar)
        self.last_bar = bar

    def publish_fill(self, fill: OrderFilled) -> None:
        self.client.publish_fill(fill)
        trade = self.tracker.on_fill(fill)
        if trade is not None:
            self.producer.send(trade)
            self.outcomes.add(trade.signal_id)

    def request_decisions(self, signals: Sequence[SignalRaised], timeout_s: float | None = None) -> list:
        self.client.flush()
        self.producer.flush()
        self.watch.wait(self.last_bar, self.outcomes)
        for s in signals:
            self.tracker.on_signal(s)
        answers = self.client.request_decisions(signals, timeout_s)
        for a in answers:
            assert isinstance(a, SizeDecided), f"decision timed out: {a}"
            self.decisions[a.signal_id] = a
        return answers

    def flush(self, timeout_s: float = 30.0) -> None:
        self.client.flush(timeout_s)
        self.producer.flush(timeout_s)


def wait_for_model(client: AdapterClient, version: str, worker: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 40
    i = 0
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text()[-3000:]
        probe = SignalRaised(ts_event=datetime(1990, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i), signal_id=f"probe-{i}",
                             strategy_id="S1", symbol="PROBE", side="BUY", price=10.0, atr=0.5, base_qty=1.0)
        answer = client.request_decision(probe, timeout_s=3.0)
        if isinstance(answer, SizeDecided) and answer.model_version == version:
            return
        i += 1
        time.sleep(0.2)
    raise AssertionError(f"worker never served {version}:\n{log.read_text()[-3000:]}")


def test_backtest_reproduces_the_live_worker(psettings: Settings, worker: subprocess.Popen, tmp_path: Path) -> None:
    codec = EventCodec(HttpSchemaRegistry(psettings.registry_url))
    version = publish_model(psettings, codec, tmp_path)
    frame = load_dataset("AAPL").iloc[:BARS]
    with AdapterClient(psettings, codec, adapter_name="parity", default_timeout_s=5.0) as client:
        wait_for_model(client, version, worker, tmp_path / "worker.log")
        port = SyncedPort(client, EventProducer(make_producer(psettings), codec, psettings), TableWatch(psettings))
        summary = run(frame, RunConfig(symbol="AAPL", interval="1d", run_id="parity"), port, progress=False)
    assert summary.signals > 30 and summary.timeouts == 0 and summary.exits > 10, summary.line()
    assert {d.model_version for d in port.decisions.values()} == {version}
    assert port.watch.closed, "no outcome reached the worker's account"

    time.sleep(0.5)  # let the worker's last features/decisions land before the warehouse refresh
    wh = tmp_path / "warehouse.duckdb"
    replay(psettings, codec, warehouse_path=wh, progress=False)
    start = frame.index[100].to_pydatetime() + timedelta(days=1)
    end = frame.index[-1].to_pydatetime() + timedelta(days=2)
    con = duckdb.connect(str(wh), read_only=True)
    history = load_history(con, start, end)
    con.close()
    live = {k: d for k, d in port.decisions.items() if d.ts_event >= start}
    assert set(history.window_ids) == set(live)
    spec = model_policy(ModelRegistry.from_settings(psettings), version)
    result = run_policy(history, spec, StrategyMap.from_spec(psettings.strategy_map))
    report = check_parity(result, history)
    assert report.compared == len(live) > 20, report.summary()
    assert report.max_abs_diff <= 1e-6 and not report.mismatches, report.summary()
    assert not report.feature_diffs and report.features_compared == len(live), report.summary()
    for sid, m in zip(result.signal_ids, result.multiplier):  # against what the adapter received, too
        assert abs(m - live[sid].multiplier) <= 1e-6
