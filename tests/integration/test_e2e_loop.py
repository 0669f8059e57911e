"""The whole learning loop, end to end, on the real embedded stack with a real worker (small data).

Signals in (reference adapter on real AAPL bars) → decisions by the worker's rule policy →
paper fills → outcomes derived by the worker → trainer round (replay, CVaR-PPO, gate,
ONNX, signed publish) → the model is promoted (by the gate if it passes, else by the
operator command, as a person would) → the worker verifies and hot-swaps it → later
decisions are made by that model version.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
import requests
from confluent_kafka.admin import AdminClient

from config.settings import Settings
from models import ModelRegistry
from models.events import KafkaModelEvents
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, Runner
from rlsizer.stack.processes import free_port
from rlsizer.stack.services import start_worker
from streams.adapter_sdk import AdapterClient
from streams.topics import ensure_topics, new_topics
from trainer.learning.cvar_ppo import TrainConfig
from trainer.round import run_round
from trainer.warehouse.replay import replay
from trainer.warehouse.store import default_path

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
LEARN, SERVE = 420, 120


@pytest.fixture
def esettings(settings: Settings, tmp_path: Path) -> Settings:
    s = replace(
        settings,
        topic_prefix=f"e2e{uuid.uuid4().hex[:8]}",
        topic_partitions=2,
        worker_web_port=free_port(),
        data_dir=tmp_path,
        model_name=f"e2e-{uuid.uuid4().hex[:8]}",
        decision_timeout_ms=5000,
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    return s


def test_signals_to_decisions_to_outcomes_to_model_to_decisions(esettings: Settings, codec) -> None:
    s = esettings
    frame = load_dataset("IBM").iloc[-(LEARN + SERVE) :]
    worker = start_worker(s, worker_id="e2e")
    try:
        with AdapterClient(s, codec, adapter_name="e2e", default_timeout_s=5.0) as client:
            runner = Runner(frame, RunConfig(symbol="IBM", interval="1d", run_id="e2e", timeout_s=5.0), client)
            learned = runner.advance(LEARN, progress=False)
            assert learned.signals > 50 and learned.timeouts == 0 and set(learned.policies) <= {"RULES", "FALLBACK"}
            learned_signals = learned.signals

            registry = ModelRegistry.from_settings(s)
            result = run_round(
                s, codec=codec, registry=registry, min_outcomes=40, train_config=TrainConfig(seed=3, total_updates=4)
            )
            assert not result.skipped, result.reason
            assert result.rows >= 40 and result.version is not None and result.max_abs_diff < 1e-4
            if not result.promoted:  # the operator's path: rlsizer models promote V
                registry.promote(result.version)
                KafkaModelEvents(s)(registry.alias_event("champion", result.version))
            assert registry.champion() == result.version

            runner.advance(LEARN + SERVE, progress=False)
            total = runner.finish()
            wh = default_path(s.data_dir)
            deadline = time.monotonic() + 30
            while True:  # the worker derives outcomes asynchronously: wait for the last exit fills
                replay(s, codec, warehouse_path=wh, progress=False)
                with duckdb.connect(str(wh), read_only=True) as con:
                    outcomes = con.execute("SELECT count(*) FROM outcomes").fetchone()[0]
                if outcomes >= total.exits or time.monotonic() > deadline:
                    break
                time.sleep(1)
            web = f"http://127.0.0.1:{s.worker_web_port}"
            state = requests.get(f"{web}/health", timeout=5).json()
            metrics = requests.get(f"{web}/metrics", timeout=5).text
    finally:
        worker.stop()

    con = duckdb.connect(str(wh), read_only=True)
    try:
        by_model = dict(
            con.execute("SELECT coalesce(model_version, '-'), count(*) FROM decisions GROUP BY 1").fetchall()
        )
        dup = con.execute(
            "SELECT count(*) FROM (SELECT signal_id FROM decisions GROUP BY 1 HAVING count(DISTINCT multiplier) > 1)"
        ).fetchone()[0]
    finally:
        con.close()
    assert outcomes == total.exits, "the worker derives exactly one TradeClosed per round trip"
    assert by_model.get(result.version, 0) > 10, f"later decisions were not made by the new model: {by_model}"
    assert total.signals > learned_signals and total.timeouts == 0 and dup == 0
    assert (
        state["model_version"] == result.version and state["policy"] == "MODEL" and state["decisions"] >= total.signals
    )
    model_decisions = [
        line for line in metrics.splitlines() if line.startswith('rlsizer_decisions_total{policy="MODEL"}')
    ]
    assert model_decisions and float(model_decisions[0].split()[-1]) == by_model[result.version], metrics[:3000]
    assert f'rlsizer_model_info{{version="{result.version}"}} 1.0' in metrics
    # every input was applied before the scrape (the last outcomes are in): nothing left to read
    assert f'rlsizer_consumer_lag_messages{{topic="{s.topic("inputs")}"}} 0.0' in metrics, metrics[-3000:]
    kept = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("rlsizer_decided_signals ")]
    expired = [
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("rlsizer_decided_expired_total ")
    ]
    # one worker: every signal it decided is held, or was forgotten by the 30-day retention (years of daily bars here)
    assert kept and expired and expired[0] > 0 and kept[0] + expired[0] >= total.signals, metrics[-3000:]
