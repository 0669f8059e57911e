"""``rlsizer up`` as a user runs it: a subprocess on free ports, stopped by signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from rlsizer.stack.embedded import StackPorts
from rlsizer.stack.processes import free_port, port_is_free
from schemas.codec import EventCodec
from schemas.registry_client import HttpSchemaRegistry
from streams.topics import subject_for
from tests.unit.schemas.factories import make_signal

pytestmark = pytest.mark.integration
READY = "Ctrl-C or SIGTERM stops everything."
ROOT = Path(__file__).resolve().parents[2]


def port_args(ports: StackPorts) -> list[str]:
    w = ports.seaweed
    return [
        "--kafka-port",
        str(ports.kafka),
        "--registry-port",
        str(ports.registry),
        "--s3-port",
        str(w.s3),
        "--seaweed-master-port",
        str(w.master),
        "--seaweed-volume-port",
        str(w.volume),
        "--seaweed-filer-port",
        str(w.filer),
        "--seaweed-admin-port",
        str(w.admin),
    ]


class Up:
    """A running ``python -m rlsizer up`` with its output collected line by line."""

    def __init__(self, data_dir: Path, ports: StackPorts, extra: tuple[str, ...] = ("--stack-only",)) -> None:
        self.extra = extra
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLSIZER_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlsizer", "up", "--data-dir", str(data_dir), *port_args(ports), *self.extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _collect(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY in self.out:
                return "\n".join(self.out)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"rlsizer up not ready (code {self.proc.returncode}):\n" + "\n".join(self.out + self.err))

    def pids(self) -> dict[str, int]:
        found = (re.match(r"\s+process\s+(.+) pid (\d+)$", line) for line in self.out)
        return {m.group(1): int(m.group(2)) for m in found if m}

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def export(text: str, name: str) -> str:
    match = re.search(rf"^export {name}=(.+)$", text, re.M)
    assert match, f"{name} not printed"
    return match.group(1)


def test_up_serves_persists_across_restarts_and_stops_cleanly(tmp_path: Path):
    data_dir, ports = tmp_path / "data", StackPorts.free()
    first = Up(data_dir, ports)
    try:
        text = first.wait_ready()
        bootstrap, registry = export(text, "RLSIZER_KAFKA_BOOTSTRAP"), export(text, "RLSIZER_REGISTRY_URL")
        assert bootstrap == f"127.0.0.1:{ports.kafka}" and registry == f"http://127.0.0.1:{ports.registry}"
        assert export(text, "RLSIZER_S3_ENDPOINT") == f"http://127.0.0.1:{ports.seaweed.s3}"
        assert export(text, "RLSIZER_DATA_DIR") == str(data_dir.resolve())
        assert str(data_dir.resolve() / "logs") in text
        pids = first.pids()
        assert set(pids) == {"seaweedfs", "tansu", "schema registry"}
        # every event's schema is there before anything is published (lookup-only clients find them)
        subject = "rlsizer.inputs-rlsizer.v1.SignalRaised"  # TopicRecordNameStrategy on the mixed inputs topic
        with urllib.request.urlopen(f"{registry}/subjects/{subject}/versions/latest", timeout=10) as r:
            assert json.loads(json.loads(r.read())["schema"])["name"] == "SignalRaised"
        with urllib.request.urlopen(f"{registry}/subjects", timeout=10) as r:
            subjects = set(json.loads(r.read()))
        assert {f"rlsizer.inputs-rlsizer.v1.{t}" for t in ("BarClosed", "SignalRaised", "OrderFilled")} <= subjects
        assert {
            f"rlsizer.{t}-value" for t in ("features", "decisions", "outcomes", "models", "health", "dlq")
        } <= subjects

        signal_event = make_signal(signal_id=f"sig-{uuid.uuid4().hex[:8]}")
        value = EventCodec(HttpSchemaRegistry(registry), subject_for=subject_for).encode("rlsizer.inputs", signal_event)
        delivered: list[Any] = []
        producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
        producer.produce("rlsizer.inputs", key=b"AAPL", value=value, on_delivery=lambda e, m: delivered.append((e, m)))
        assert producer.flush(10) == 0 and delivered[0][0] is None
        partition, offset = delivered[0][1].partition(), delivered[0][1].offset()

        first.proc.send_signal(signal.SIGTERM)
        assert first.wait() == 0
        assert all(gone(pid) for pid in pids.values()), pids
        assert all(port_is_free(p) for _, p in ports.all())
    finally:
        first.kill()

    second = Up(data_dir, ports)
    try:
        second.wait_ready()
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-up", "fetch.wait.max.ms": 20})
        try:
            consumer.assign([TopicPartition("rlsizer.inputs", partition, offset)])
            msg = consumer.poll(15)
        finally:
            consumer.close()
        assert msg is not None and msg.error() is None
        # schema ids survived too: a fresh codec on the new registry decodes the old bytes
        assert EventCodec(HttpSchemaRegistry(registry)).decode(msg.value()) == signal_event

        pids = second.pids()
        os.kill(pids["tansu"], signal.SIGKILL)
        assert second.wait() == 1
        stderr = "\n".join(second.err)
        assert "tansu" in stderr and "stopped unexpectedly" in stderr
        assert all(gone(pid) for pid in pids.values()), pids
    finally:
        second.kill()


def test_up_on_a_taken_port_names_it_and_leaves_nothing_running(tmp_path: Path, settings):
    taken = int(settings.kafka_bootstrap.rsplit(":", 1)[1])  # held by the session's stack
    fresh = StackPorts.free()
    ports = StackPorts(kafka=taken, registry=fresh.registry, seaweed=fresh.seaweed)
    up = Up(tmp_path / "data", ports)
    try:
        code = up.wait(60)
    finally:
        up.kill()
    stderr = "\n".join(up.err)
    assert code != 0
    assert str(taken) in stderr and "Kafka" in stderr
    assert "Traceback" not in stderr
    assert all(port_is_free(p) for name, p in ports.all() if p != taken)


def test_up_with_services_decides_a_signal_from_a_standard_confluent_client_also_after_its_worker_crashed(
    tmp_path: Path,
):
    """What an outside user does: `rlsizer up`, then confluent-kafka's own Avro serde, no rlsizer code;
    a SIGKILLed worker is started again by `up` and answers the next signal."""
    from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    ports = StackPorts.free()
    up = Up(tmp_path / "data", ports, extra=("--worker-web-port", str(free_port())))
    try:
        text = up.wait_ready(timeout=150)
        pids = up.pids()
        assert {"seaweedfs", "tansu", "schema registry", "worker-0", "trainer", "monitor"} <= set(pids), pids
        bootstrap, registry_url = export(text, "RLSIZER_KAFKA_BOOTSTRAP"), export(text, "RLSIZER_REGISTRY_URL")
        registry = SchemaRegistryClient({"url": registry_url})
        schema_dir = ROOT / "schemas"
        # the README's settings for a bot: record-name subjects on the mixed inputs topic, Kafka's partitioner
        serialize = AvroSerializer(
            registry,
            (schema_dir / "SignalRaised.avsc").read_text(),
            to_dict=lambda obj, ctx: obj,
            conf={"subject.name.strategy": topic_record_subject_name_strategy},
        )
        deserialize = AvroDeserializer(registry, (schema_dir / "SizeDecided.avsc").read_text())
        producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})

        def decided(symbol: str) -> dict[str, Any]:
            """Publish a signal for ``symbol`` as a bot would and wait for its SizeDecided."""
            signal_id = f"outside-{uuid.uuid4().hex[:8]}"
            now = datetime.now(UTC)
            record = {
                "event_id": str(uuid.uuid4()),
                "ts_event": now,
                "ts_init": now,
                "signal_id": signal_id,
                "strategy_id": "S5",
                "symbol": symbol,
                "side": "SELL",
                "price": 310.5,
                "atr": 4.2,
                "score": 0.3,
                "q_score": 0.9,
                "base_qty": 50.0,
                "stop_price": 316.0,
                "target_price": None,
                "adapter": "outside",
                "attrs": {},
            }
            producer.produce(
                "rlsizer.inputs",
                key=symbol.encode(),
                value=serialize(record, SerializationContext("rlsizer.inputs", MessageField.VALUE)),
            )
            producer.flush(10)
            consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": f"outside-{uuid.uuid4().hex[:6]}",
                    "auto.offset.reset": "earliest",
                }
            )
            consumer.subscribe(["rlsizer.decisions"])
            decision = None
            deadline = time.monotonic() + 60
            while decision is None and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                value = deserialize(msg.value(), SerializationContext("rlsizer.decisions", MessageField.VALUE))
                if value["signal_id"] == signal_id:
                    decision = value
            consumer.close()
            assert decision is not None, "no SizeDecided for the signal within 60 s:\n" + "\n".join(up.err[-20:])
            return decision

        decision = decided("MSFT")
        assert 0.25 <= decision["multiplier"] <= 2.0 and decision["policy"] == "FALLBACK"
        assert "no bars" in decision["reason"] and decision["qty"] == 50.0 * decision["multiplier"]

        # a crashed worker is started again (rlsizer.stack.supervise); the stack and its events stay
        os.kill(pids["worker-0"], signal.SIGKILL)
        deadline = time.monotonic() + 150
        while not any("worker-0 restarted" in line for line in up.err) and time.monotonic() < deadline:
            assert up.proc.poll() is None, "\n".join(up.err)
            time.sleep(0.2)
        restarted = [line for line in up.err if "worker-0 restarted" in line]
        assert restarted, "\n".join(up.err)
        assert any(f"worker-0 (pid {pids['worker-0']}) stopped unexpectedly with code -9" in line for line in up.err)
        pids["worker-0 again"] = int(restarted[0].rsplit(" ", 1)[1])
        assert decided("IBM")["signal_id"].startswith("outside-")
        up.proc.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
        assert all(gone(pid, 15) for pid in pids.values()), pids
    finally:
        up.kill()
