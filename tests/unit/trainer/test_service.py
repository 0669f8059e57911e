"""Trainer service schedule: backoff after failures, status after every attempt, health per round, clean stop."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from schemas.events import HealthChecked
from trainer.service import install_stop_signals, run_service
from trainer.status import load_status

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INTERVAL = 3600.0


@dataclass(frozen=True)
class Outcome:
    skipped: bool
    reason: str
    outcomes: int
    version: str | None = None
    promoted: bool = False


class FakeTime:
    """A clock that only moves when the service waits."""

    def __init__(self) -> None:
        self.now = T0
        self.waits: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += timedelta(seconds=seconds)


class ScriptedRound:
    """Raises or returns the scripted results in order; records what it was asked."""

    def __init__(self, script: list[Exception | Outcome]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, object]] = []

    def __call__(self, **kwargs: object) -> Outcome:
        self.calls.append(kwargs)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, train_interval_seconds=INTERVAL, train_min_new_outcomes=50, **overrides)


def test_fails_twice_then_succeeds_with_growing_backoff_and_status(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    time = FakeTime()
    round_fn = ScriptedRound(
        [
            RuntimeError("broker down"),
            RuntimeError("broker still down"),
            Outcome(skipped=False, reason="promoted: ...", outcomes=250, version="v1", promoted=True),
            Outcome(skipped=True, reason="skipped: 3 new outcomes", outcomes=253),
        ]
    )
    health: list[HealthChecked] = []
    statuses = []

    def publish(event: HealthChecked) -> None:
        health.append(event)
        statuses.append(load_status(tmp_path))  # the status is on disk before health goes out

    attempts = run_service(
        settings,
        round_fn=round_fn,
        publish_health=publish,
        stop=threading.Event(),
        clock=time.clock,
        wait=time.wait,
        max_attempts=4,
    )

    assert [a.delay for a in attempts] == [60.0, 120.0, INTERVAL, INTERVAL]
    assert time.waits == [60.0, 120.0, INTERVAL]  # no wait after the last attempt
    assert [s.consecutive_failures for s in statuses] == [1, 2, 0, 0]
    assert statuses[1].last_error == "RuntimeError: broker still down"
    assert statuses[1].last_success is None
    assert statuses[2].last_success == T0 + timedelta(seconds=180)
    assert statuses[2].last_version == "v1" and statuses[2].outcomes_at_last_success == 250
    # a skip moves only last_attempt
    assert statuses[3].last_attempt == T0 + timedelta(seconds=180 + INTERVAL)
    assert statuses[3].last_success == statuses[2].last_success and statuses[3].outcomes_at_last_success == 250
    assert [h.status for h in health] == ["FAIL", "FAIL", "OK", "WARN"]
    assert {h.component for h in health} == {"trainer"}
    assert health[0].action == "retry_training" and health[2].action is None
    # the round is told the count at the last success and the threshold from the settings
    assert [c["since_outcomes"] for c in round_fn.calls] == [0, 0, 0, 250]
    assert {c["min_new_outcomes"] for c in round_fn.calls} == {50}
    assert load_status(tmp_path) == statuses[-1]


def test_backoff_is_capped_at_the_interval(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    time = FakeTime()
    round_fn = ScriptedRound([RuntimeError(f"boom {i}") for i in range(9)])
    attempts = run_service(
        settings,
        round_fn=round_fn,
        publish_health=lambda e: None,
        stop=threading.Event(),
        clock=time.clock,
        wait=time.wait,
        max_attempts=9,
    )
    delays = [a.delay for a in attempts]
    assert delays[:6] == [60.0, 120.0, 240.0, 480.0, 960.0, 1920.0]
    assert delays[6:] == [INTERVAL] * 3
    assert load_status(tmp_path).consecutive_failures == 9


def test_status_survives_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    time = FakeTime()
    run_service(
        settings,
        round_fn=ScriptedRound([Outcome(skipped=False, reason="ok", outcomes=400, version="v7")]),
        publish_health=lambda e: None,
        stop=threading.Event(),
        clock=time.clock,
        wait=time.wait,
        max_attempts=1,
    )
    again = ScriptedRound([RuntimeError("x")])
    attempts = run_service(
        settings,
        round_fn=again,
        publish_health=lambda e: None,
        stop=threading.Event(),
        clock=time.clock,
        wait=time.wait,
        max_attempts=1,
    )
    assert again.calls[0]["since_outcomes"] == 400
    assert attempts[0].status.last_version == "v7" and attempts[0].status.consecutive_failures == 1


def test_a_broken_health_sink_does_not_stop_the_service(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    time = FakeTime()

    def broken(_event: HealthChecked) -> None:
        raise ConnectionError("kafka unreachable")

    round_fn = ScriptedRound([Outcome(skipped=True, reason="skipped", outcomes=1)] * 2)
    attempts = run_service(
        settings,
        round_fn=round_fn,
        publish_health=broken,
        stop=threading.Event(),
        clock=time.clock,
        wait=time.wait,
        max_attempts=2,
    )
    assert len(attempts) == 2 and len(round_fn.calls) == 2


def test_stop_during_the_wait_ends_the_loop(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    stop = threading.Event()
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        stop.set()  # as SIGTERM would, while waiting

    round_fn = ScriptedRound([Outcome(skipped=True, reason="skipped", outcomes=0)] * 3)
    attempts = run_service(settings, round_fn=round_fn, publish_health=lambda e: None, stop=stop, wait=wait)
    assert len(attempts) == 1 and waits == [INTERVAL] and len(round_fn.calls) == 1


def test_stop_set_before_start_runs_nothing(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    round_fn = ScriptedRound([])
    assert run_service(make_settings(tmp_path), round_fn=round_fn, publish_health=lambda e: None, stop=stop) == []
    assert round_fn.calls == []


def test_sigterm_sets_the_stop_flag() -> None:
    from streams.stop_flag import StopFlag

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stop = StopFlag()
    try:
        install_stop_signals(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2.0)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@pytest.mark.parametrize("interval", [30.0])
def test_backoff_base_never_exceeds_a_short_interval(tmp_path: Path, interval: float) -> None:
    settings = Settings(data_dir=tmp_path, train_interval_seconds=interval)
    time = FakeTime()
    attempts = run_service(
        settings,
        round_fn=ScriptedRound([RuntimeError("a"), RuntimeError("b")]),
        publish_health=lambda e: None,
        stop=threading.Event(),
        clock=time.clock,
        wait=time.wait,
        max_attempts=2,
    )
    assert [a.delay for a in attempts] == [30.0, 30.0]
