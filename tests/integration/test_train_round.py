"""A small end-to-end training round on the real embedded stack (tansu, SeaweedFS, registry).

Events are synthetic but consistent: each signal has a SignalRaised, an fs1 FeaturesComputed
(neutral values, with the signal's q-score, ATR %, family one-hot and strategy history taken
from ``trainer.backtest.synthetic``), a SizeDecided at 1x and a TradeClosed ten minutes later whose R is
the synthetic R. Rounds run through the service's ``run_once`` so the status file and the
HealthChecked event are checked too.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from agents.features import FEATURE_NAMES, FEATURE_NEUTRAL, FEATURE_SET
from config.settings import Settings
from models import CHALLENGER, ModelRegistry
from schemas.codec import EventCodec
from schemas.events import Event, FeaturesComputed, SignalRaised, SizeDecided, TradeClosed
from streams.producer import EventProducer, make_producer
from streams.topics import ensure_topics, new_topics
from trainer.backtest.synthetic import synthetic_signals
from trainer.evaluation.gate import GateConfig
from trainer.learning.cvar_ppo import TrainConfig
from trainer.round import run_round
from trainer.service import kafka_health_publisher, run_once
from trainer.status import TrainerStatus, load_status

pytestmark = pytest.mark.integration

STRATEGY = {"EmaCross": "S1", "MeanReversion": "S4", "Breakout": "S8", "Momentum": "S12"}
TINY = TrainConfig(total_updates=4, hidden=(16,), epochs=2, minibatch=128, seed=3)


def signal_events(*, n_episodes: int, seed: int, start: str) -> list[Event]:
    data = synthetic_signals(n_episodes=n_episodes, trades_per_episode=12, seed=seed, start=start)
    events: list[Event] = []
    for i in range(len(data)):
        ts = np.datetime64(data.ts[i], "us").astype(datetime).replace(tzinfo=UTC)
        family = str(data.family[i])
        sid, symbol, strategy = (
            f"sig-{uuid.uuid4().hex[:12]}",
            ("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3],
            STRATEGY[family],
        )
        r = float(data.r_multiple[i])
        features = dict(FEATURE_NEUTRAL)
        features.update(
            {
                name: float(data.column(name)[i])
                for name in (
                    "sig_q_score",
                    "sig_score",
                    "sig_atr_pct",
                    "strat_win_rate",
                    "strat_mean_r",
                    "strat_n_trades",
                )
            }
        )
        features.update({f"fam_{f}": 1.0 if f == family else 0.0 for f in STRATEGY})
        events += [
            SignalRaised(
                signal_id=sid,
                strategy_id=strategy,
                symbol=symbol,
                side="BUY",
                price=100.0,
                atr=1.0,
                q_score=features["sig_q_score"],
                score=features["sig_score"],
                base_qty=1.0,
                stop_price=99.0,
                ts_event=ts,
            ),
            FeaturesComputed(
                signal_id=sid,
                symbol=symbol,
                strategy_id=strategy,
                strategy_type=family,
                feature_set=FEATURE_SET,
                features=features,
                ts_event=ts,
            ),
            SizeDecided(
                signal_id=sid,
                symbol=symbol,
                strategy_id=strategy,
                multiplier=1.0,
                qty=1.0,
                policy="RULES",
                reason="test",
                latency_us=100,
                ts_event=ts,
            ),
            TradeClosed(
                signal_id=sid,
                symbol=symbol,
                strategy_id=strategy,
                side="BUY",
                qty=1.0,
                entry_price=100.0,
                exit_price=100.0 + r,
                entry_ts=ts,
                exit_ts=ts + timedelta(minutes=10),
                pnl=r,
                fees=0.02,
                r_multiple=r,
                exit_reason="target" if r > 0 else "stop",
                ts_event=ts + timedelta(minutes=10),
            ),
        ]
    return events


def produce(settings: Settings, codec: EventCodec, events: list[Event]) -> None:
    producer = EventProducer(make_producer(settings), codec, settings)
    for event in events:
        producer.send(event)
    producer.flush(30)


def read_topic(
    settings: Settings, codec: EventCodec, short_name: str, key: bytes, expected: int, timeout: float = 20.0
) -> list[Event]:
    """Events keyed ``key`` on every partition of the topic, until ``expected`` are seen or the timeout."""
    topic = settings.topic(short_name)
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    found: list[Event] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout
        while len(found) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error() and msg.key() == key:
                found.append(codec.decode(msg.value()))
    finally:
        consumer.close()
    return found


@pytest.fixture()
def round_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    s = dataclasses.replace(
        settings,
        topic_prefix=f"tr_{uuid.uuid4().hex[:10]}",
        topic_partitions=2,
        data_dir=tmp_path,
        model_name=f"m-{uuid.uuid4().hex[:10]}",
        train_min_new_outcomes=100,
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    yield s


def test_round_publishes_a_verifiable_model_then_skips_without_new_outcomes(
    round_settings: Settings, codec: EventCodec
) -> None:
    s = round_settings
    produce(s, codec, signal_events(n_episodes=24, seed=11, start="2024-02-01T00:00:00"))
    registry = ModelRegistry.from_settings(s)
    round_fn = functools.partial(
        run_round,
        s,
        codec=codec,
        registry=registry,
        train_config=TINY,
        min_outcomes=150,
        gate_config=GateConfig(n_boot=200),
    )
    publish_health = kafka_health_publisher(s, codec)

    first = run_once(s, TrainerStatus(), round_fn=round_fn, publish_health=publish_health)

    assert first.health.status == "OK", first.health.detail
    status = load_status(s.data_dir)
    assert status == first.status and status.outcomes_at_last_success == 24 * 12 and status.consecutive_failures == 0
    version = status.last_version
    artifact, manifest = registry.fetch_verified(version)
    assert manifest.run_name.startswith("cvarppo_") and f"_s{TINY.seed}_" in manifest.run_name
    assert version.endswith("-" + manifest.run_name)  # the run name labels the version
    assert manifest.feature_set == FEATURE_SET and manifest.feature_names == FEATURE_NAMES
    assert manifest.inputs[0].shape == ("batch", len(FEATURE_NAMES)) and manifest.outputs[0].name == "multiplier"
    assert manifest.parent_version is None
    for key in (
        "holdout_return",
        "holdout_sharpe",
        "holdout_max_drawdown",
        "holdout_cvar5",
        "holdout_session_cvar5",
        "max_abs_diff",
        "gate_vs_fixed_1x_required",
        "gate_vs_rules_required",
        "gate_promote",
        "gate_windows",
        "wf1_return",
        "wf1_session_cvar5",
        "wf1_fixed_1x_session_cvar5",
        "wf3_from_s",
    ):
        assert key in manifest.metrics, key
    assert manifest.metrics["max_abs_diff"] <= 1e-4
    assert manifest.metrics["gate_vs_half_kelly_required"] == 0.0
    promoted = manifest.metrics["gate_promote"] == 1.0
    assert registry.champion() == (version if promoted else None)
    assert registry.challenger() == (None if promoted else version)
    assert manifest.data_from.date().isoformat() == "2024-02-01"

    # the ONNX artifact is what agents serve, and sizes within the contract
    from agents.sizing import load_policy

    served = load_policy(artifact, feature_names=manifest.feature_names, version=version)
    assert 0.25 <= served.predict(dict(FEATURE_NEUTRAL)) <= 2.0

    published = read_topic(s, codec, "models", s.model_name.encode(), expected=2 if promoted else 1)
    assert [e.version for e in published] == [version] * len(published)
    assert published[0].alias == CHALLENGER and published[0].sha256 == manifest.sha256
    assert [e.alias for e in published] == ([CHALLENGER, "champion"] if promoted else [CHALLENGER])

    report = s.data_dir / "reports" / f"{version}.html"
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 3 + 3  # one per held-out window, multipliers, training, risk
    for policy in ("cvar_ppo", "fixed_1x", "rules", "half_kelly", "vol_target", "plain_ppo"):
        assert f"<td>{policy}</td>" in html
    health = read_topic(s, codec, "health", b"trainer", expected=1)
    assert health and health[0].status == "OK" and version in health[0].detail

    # nothing new: the next attempt replays nothing and skips, saying why
    second = run_once(s, status, round_fn=round_fn, publish_health=publish_health)
    assert second.health.status == "WARN"
    assert "0 new outcomes since the last successful round (needs 100)" in second.health.detail
    after = load_status(s.data_dir)
    assert after.last_version == version and after.last_success == status.last_success
    assert after.last_attempt == second.at

    # an operator makes it champion; with new outcomes, the next round scores it and names it parent
    if not promoted:
        registry.promote(version)
    produce(s, codec, signal_events(n_episodes=10, seed=12, start="2024-02-25T00:00:00"))
    third = round_fn(
        now=datetime.now(UTC) + timedelta(seconds=5),
        since_outcomes=after.outcomes_at_last_success,
        min_new_outcomes=100,
    )
    assert not third.skipped and third.outcomes == 34 * 12
    assert third.parent_version == version
    assert list(third.table)[:2] == ["cvar_ppo", "champion"]
    assert "champion" in third.decision.required
    assert registry.read_manifest(third.version).parent_version == version

    # `rlsizer health` counts rounds run by hand (round_fn alone, as `rlsizer train` runs it), not only the service's
    from rlsizer.health.probes import training_probe
    from trainer.status import status_path

    status_path(s.data_dir).unlink()  # as when only manual rounds ever ran
    activity = training_probe(s, lambda: registry)(datetime.now(UTC))
    assert activity.status == "OK" and "last training round" in activity.detail, activity
