"""The reconciler's child process on the real embedded broker: it re-publishes a skipped
signal, stops cleanly, is started again when it dies, and never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from agents.glue.reconcile_process import ReconcilerProcess
from schemas.codec import EventCodec
from schemas.events import SignalRaised, SizeDecided
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.settings import Settings
from streams.topics import ensure_topics, new_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
T = datetime(2024, 3, 1, 15, tzinfo=timezone.utc)


@pytest.fixture
def rsettings(settings: Settings) -> Settings:
    s = replace(settings, topic_prefix=f"rc{uuid.uuid4().hex[:8]}", topic_partitions=1)
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    return s


def _signal(sid: str) -> SignalRaised:
    return SignalRaised(ts_event=T, signal_id=sid, strategy_id="S1", symbol="AAPL", side="BUY", price=100.0, atr=2.0,
                        base_qty=10.0)


def _decision(sid: str) -> SizeDecided:
    return SizeDecided(ts_event=T, signal_id=sid, symbol="AAPL", strategy_id="S1", multiplier=1.0, qty=10.0,
                       policy="RULES", reason="test", latency_us=1)


def _signal_ids(s: Settings, codec: EventCodec, seconds: float, want: dict[str, int]) -> dict[str, int]:
    """How often each signal id is on the signals topic, read until ``want`` is met or ``seconds`` pass."""
    consumer = make_consumer(s, f"check-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([s.topic("signals")])
    seen: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and any(seen.get(k, 0) < n for k, n in want.items()):
            for msg in consumer.consume(100, 0.2):
                if not msg.error():
                    sid = codec.decode(msg.value()).signal_id
                    seen[sid] = seen.get(sid, 0) + 1
    finally:
        consumer.close()
    return seen


def _started_after(s: Settings, codec: EventCodec, signals: tuple[str, ...], decided: tuple[str, ...]) -> ReconcilerProcess:
    """A reconciler child (due after 1 s) started once ``signals`` and the decisions of ``decided`` are on the topics."""
    out = EventProducer(make_producer(s), codec, s)
    for sid in signals:
        out.send(_signal(sid))
    for sid in decided:
        out.send(_decision(sid))
    out.flush()
    child = ReconcilerProcess(s, group_id=f"rc-{uuid.uuid4().hex[:6]}", after_s=1.0)
    child.start()
    return child


def test_the_child_republishes_a_skipped_signal_and_stops_cleanly(rsettings, codec):
    child = _started_after(rsettings, codec, ("a", "b", "c"), ("a", "c"))  # b is skipped: a and c around it are decided
    try:
        seen = _signal_ids(rsettings, codec, 60, {"b": 2})
        assert child.alive()
        counted = _republished_within(child, 10, want=1)  # the child reports every 0.5 s
    finally:
        popen = child._popen
        child.stop()
    assert seen.get("b") == 2, seen  # re-published once, unchanged
    assert seen.get("a") == 1 and seen.get("c") == 1, seen  # decided ones are left alone
    assert counted == 1  # what the worker adds to rlsizer_reconciled_decisions_total
    assert child.take_republished() == 0  # taken once, not again
    assert popen is not None and popen.returncode == 0  # SIGTERM: a clean stop, not a kill
    assert not child.alive()


def _republished_within(child: ReconcilerProcess, seconds: float, *, want: int) -> int:
    total = 0
    deadline = time.monotonic() + seconds
    while total < want and time.monotonic() < deadline:
        total += child.take_republished()
        time.sleep(0.1)
    return total + child.take_republished()


def test_a_dead_childs_count_survives_its_restart(rsettings, codec):
    child = _started_after(rsettings, codec, ("lonely", "next"), ("next",))  # lonely is skipped: re-published after 1 s
    try:
        assert _signal_ids(rsettings, codec, 60, {"lonely": 2}).get("lonely", 0) >= 2
        time.sleep(1.5)  # past the child's next report
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while child.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.restart_if_dead()
        assert child.take_republished() >= 1  # reported by the child that died, read at its restart
    finally:
        child.stop()


def test_a_dead_child_is_started_again(rsettings):
    child = ReconcilerProcess(rsettings, group_id=f"rc-{uuid.uuid4().hex[:6]}", after_s=1.0)
    assert not child.restart_if_dead()  # never started: nothing to restart
    child.start()
    try:
        first = child.pid
        assert not child.restart_if_dead()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while child.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.restart_if_dead()
        assert child.alive() and child.pid != first and child.restarts == 1
    finally:
        child.stop()
    assert not child.alive()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited, not yet reaped by its new parent


def test_the_child_ends_when_its_parent_is_killed(rsettings, tmp_path):
    script = (
        "import sys, time\n"
        "from agents.glue.reconcile_process import ReconcilerProcess\n"
        "from streams.settings import Settings\n"
        "child = ReconcilerProcess(Settings.from_env(), group_id=sys.argv[1], after_s=1.0)\n"
        "child.start()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, **rsettings.to_env(), "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", script, f"rc-{uuid.uuid4().hex[:6]}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=open(tmp_path / "parent.log", "wb"))
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        time.sleep(2)  # the child is up and running its consumer
        assert not _gone(child_pid), (tmp_path / "parent.log").read_text()
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child_pid), f"reconciler {child_pid} outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_burst_of_sigterms_still_ends_the_child(rsettings):
    """The worker's stop and then PDEATHSIG send two SIGTERMs; a second one arriving while the first was
    handled used to hang the child forever (its handler took a lock the first one held)."""
    child = ReconcilerProcess(rsettings, group_id=f"rc-{uuid.uuid4().hex[:6]}", after_s=1.0)
    child.start()
    popen = child._popen
    assert popen is not None
    try:
        time.sleep(3)  # running its loop
        for _ in range(2000):
            if popen.poll() is not None:
                break
            os.kill(popen.pid, signal.SIGTERM)
        code = popen.wait(20)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    assert code == 0
