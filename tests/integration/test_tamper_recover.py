"""Tamper, then recover, on the real stack: a worker, the registry on SeaweedFS and the monitor.

1. v1 is published as champion: the worker verifies and serves it;
2. v2's artifact is tampered with in S3 after publication and v2 is announced as
   champion, which the signed champion alias does not name (a forged announcement):
   the worker refuses it (HealthChecked FAIL) and keeps serving v1;
3. the worker's local copy of v1 is corrupted: the monitor's model_integrity check
   FAILs, restores it from the cache's backup, and the next check is OK;
4. v3 is published properly: the worker swaps to it.
The HealthChecked sequence and the decisions' model versions are printed (-s) and asserted.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from agents.features import FEATURE_NAMES, FEATURE_SET
from config.settings import Settings
from models import ModelRegistry
from models.events import KafkaModelEvents
from models.manifest import ManifestDraft, TensorSpec
from models.store import ARTIFACT_FILE, make_s3_client
from rlsizer.commands.monitor import build_monitor
from rlsizer.stack.services import start_worker
from schemas.events import HealthChecked, SignalRaised, SizeDecided
from streams.adapter_sdk import AdapterClient
from streams.consumer import make_consumer
from streams.topics import ensure_topics, new_topics
from tests.unit.trainer.backtest_live import tiny_model

pytestmark = pytest.mark.integration
T0 = datetime(2001, 1, 1, tzinfo=UTC)


@pytest.fixture
def tsettings(settings: Settings, tmp_path: Path) -> Settings:
    s = replace(
        settings,
        topic_prefix=f"tr{uuid.uuid4().hex[:8]}",
        topic_partitions=2,
        worker_web_port=0,
        data_dir=tmp_path,
        model_name=f"tamper-{uuid.uuid4().hex[:8]}",
        model_poll_seconds=3600,
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    return s


def draft(run: str) -> ManifestDraft:
    d = len(FEATURE_NAMES)
    return ManifestDraft(
        feature_set=FEATURE_SET,
        feature_names=FEATURE_NAMES,
        inputs=(TensorSpec(name="features", dtype="float32", shape=("batch", d)),),
        outputs=(TensorSpec(name="multiplier", dtype="float32", shape=("batch",)),),
        metrics={},
        data_from=T0,
        data_to=T0 + timedelta(days=30),
        run_name=run,
    )


class Probe:
    """Asks the worker for decisions on a probe symbol and records which model made them."""

    def __init__(self, client: AdapterClient) -> None:
        self.client, self.n, self.versions = client, 0, []

    def ask(self) -> str | None:
        self.n += 1
        signal = SignalRaised(
            ts_event=T0 + timedelta(minutes=self.n),
            signal_id=f"probe-{uuid.uuid4().hex[:6]}-{self.n}",
            strategy_id="S1",
            symbol="PROBE",
            side="BUY",
            price=10.0,
            atr=0.5,
            base_qty=1.0,
        )
        answer = self.client.request_decision(signal, timeout_s=5.0)
        assert isinstance(answer, SizeDecided), f"no decision for {signal.signal_id}"
        self.versions.append(answer.model_version)
        return answer.model_version

    def until(self, version: str | None, tries: int = 60) -> None:
        for _ in range(tries):
            if self.ask() == version:
                return
        raise AssertionError(f"the worker never served {version}; saw {self.versions[-5:]}")


def health_events(s: Settings, codec) -> list[HealthChecked]:
    consumer = make_consumer(
        s, f"h-{uuid.uuid4().hex[:6]}", **{"auto.offset.reset": "earliest", "enable.partition.eof": True}
    )
    consumer.subscribe([s.topic("health")])
    events, eof = [], set()
    try:
        for _ in range(200):
            msg = consumer.poll(0.5)
            if msg is None:
                if eof:
                    break
                continue
            if msg.error():
                eof.add(msg.partition())
                continue
            events.append(codec.decode(msg.value()))
    finally:
        consumer.close()
    return sorted(events, key=lambda e: e.ts_event)


def test_tampered_model_is_refused_and_corrupt_cache_is_restored(tsettings: Settings, codec) -> None:
    s = tsettings
    registry = ModelRegistry.from_settings(s)
    sink = KafkaModelEvents(s)
    worker = start_worker(s, worker_id="t")
    try:
        with AdapterClient(s, codec, adapter_name="tamper-test") as client:
            probe = Probe(client)
            v1 = registry.publish(tiny_model(seed=1), draft("v1"), alias="champion", on_published=sink).manifest.version
            probe.until(v1)

            published = registry.publish(tiny_model(seed=2), draft("v2"))
            v2 = published.manifest.version
            key = f"models/{s.model_name}/versions/{v2}/{ARTIFACT_FILE}"
            make_s3_client(s).put_object(Bucket=s.s3_bucket, Key=key, Body=tiny_model(seed=3))  # tampered after signing
            sink(replace(published.event, alias="champion"))
            for _ in range(8):  # decisions go on, by v1
                assert probe.ask() == v1

            cached = s.data_dir / "worker" / "t" / "models" / "versions" / v1 / ARTIFACT_FILE
            assert cached.exists(), "the worker keeps a verified local copy"
            cached.write_bytes(b"corrupted on disk")
            monitor = build_monitor(s)
            first = [e for e in monitor.run_all() if e.check == "model_integrity"]
            second = [e for e in monitor.run_all() if e.check == "model_integrity"]
            assert cached.read_bytes() != b"corrupted on disk"

            v3 = registry.publish(tiny_model(seed=4), draft("v3"), alias="champion", on_published=sink).manifest.version
            probe.until(v3)
    finally:
        worker.stop()

    sequence = [(e.component, e.check, e.status, e.detail[:90], e.action or "") for e in health_events(s, codec)]
    print("\nHealthChecked sequence:")
    for row in sequence:
        print("  ", " | ".join(row))
    print("decision model versions:", " ".join(str(v)[-12:] if v else "rules" for v in probe.versions))

    assert (
        first[0].status == "FAIL"
        and first[0].action.startswith("restore_model: ")
        and "restored from backup" in first[0].action
    )
    assert second[0].status == "OK"
    worker_checks = [(st, d) for c, chk, st, d, _ in sequence if c == "worker" and chk == "model_integrity"]
    assert any(st == "OK" and v1 in d for st, d in worker_checks)
    assert any(st == "FAIL" and v2 in d for st, d in worker_checks), worker_checks
    assert any(st == "OK" and v3 in d for st, d in worker_checks)
    assert v2 not in probe.versions
    assert probe.versions.index(v3) > probe.versions.index(v1)
