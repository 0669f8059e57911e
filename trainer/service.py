"""The trainer service: a training round every ``train_interval_seconds``, backing off after failures.

Each attempt calls the round function with the outcome count of the last successful round, so
the round itself (after its incremental replay) skips unless ``train_min_new_outcomes`` new
outcomes arrived. After every attempt the service

- writes ``TrainerStatus`` (``trainer.status``): success resets the failure count and records the
  outcome count; a skip only moves ``last_attempt``; a failure increments the count and keeps the error;
- publishes a ``HealthChecked`` (component ``trainer``, check ``training_round``): OK when a model
  was published, WARN when skipped, FAIL with action ``retry_training`` after a failure;
- waits ``train_interval_seconds`` after a success or a skip, and
  ``agents.health.backoff_delay(failures, base_seconds=backoff_base_seconds, cap_seconds=interval)``
  after a failure (60 s, 120 s, 240 s ... never longer than the normal interval).

Stopping: ``stop`` (a ``streams.stop_flag.StopFlag``, set by SIGTERM/SIGINT via ``install_stop_signals``) ends
the wait at once; a round in progress is not interrupted (training cannot be resumed half-way),
the loop exits right after it. Clock, wait, round and health sink are injected, so the schedule is
testable without time passing.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agents.health import ACTION_RETRY_TRAINING, FAIL, OK, WARN, backoff_delay
from config.settings import Settings
from schemas.events import HealthChecked, utc_now
from streams.stop_flag import Stop, StopFlag, stop_on_signals
from trainer.status import TrainerStatus, load_status, save_status

log = logging.getLogger(__name__)

COMPONENT = "trainer"
CHECK = "training_round"
BACKOFF_BASE_SECONDS = 60.0


class RoundOutcome(Protocol):
    """What the service reads from a round (``trainer.round.RoundResult`` satisfies it)."""

    @property
    def skipped(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def outcomes(self) -> int: ...

    @property
    def version(self) -> str | None: ...

    @property
    def promoted(self) -> bool: ...


RoundFunction = Callable[..., RoundOutcome]
"""``round_fn(now=..., since_outcomes=..., min_new_outcomes=...) -> RoundOutcome``"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One attempt of the loop: what happened and how long the service then waited."""

    at: datetime
    status: TrainerStatus
    health: HealthChecked
    delay: float


def attempt_health(now: datetime, outcome: RoundOutcome | None, error: str | None, failures: int) -> HealthChecked:
    """The HealthChecked of one attempt (pure)."""
    if error is not None:
        return HealthChecked(
            ts_event=now,
            component=COMPONENT,
            check=CHECK,
            status=FAIL,
            detail=f"round failed ({failures} in a row): {error}"[:1000],
            action=ACTION_RETRY_TRAINING,
        )
    assert outcome is not None
    if outcome.skipped:
        return HealthChecked(ts_event=now, component=COMPONENT, check=CHECK, status=WARN, detail=outcome.reason[:1000])
    alias = "champion" if outcome.promoted else "challenger"
    return HealthChecked(
        ts_event=now,
        component=COMPONENT,
        check=CHECK,
        status=OK,
        detail=f"published {outcome.version} as {alias}: {outcome.reason}"[:1000],
    )


def next_status(status: TrainerStatus, now: datetime, outcome: RoundOutcome | None, error: str | None) -> TrainerStatus:
    """The status after one attempt (pure)."""
    if error is not None:
        return status.failed(now, error)
    assert outcome is not None
    if outcome.skipped:
        return replace(status, last_attempt=now)
    return status.succeeded(now, version=outcome.version or "", outcomes=outcome.outcomes)


def run_once(
    settings: Settings,
    status: TrainerStatus,
    *,
    round_fn: RoundFunction,
    publish_health: Callable[[HealthChecked], None],
    clock: Callable[[], datetime] = utc_now,
    backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
) -> Attempt:
    """One attempt: run the round, save the status, publish health; returns the delay before the next."""
    now = clock()
    outcome: RoundOutcome | None = None
    error: str | None = None
    try:
        outcome = round_fn(
            now=now, since_outcomes=status.outcomes_at_last_success, min_new_outcomes=settings.train_min_new_outcomes
        )
    except Exception as exc:  # any failure of a round is retried with backoff, never fatal to the service
        error = f"{type(exc).__name__}: {exc}"
        log.exception("training round failed")
    status = next_status(status, now, outcome, error)
    save_status(settings.data_dir, status)
    health = attempt_health(now, outcome, error, status.consecutive_failures)
    try:
        publish_health(health)
    except Exception as exc:  # health is reported best-effort; the status file is the durable record
        log.warning("could not publish HealthChecked: %s", exc)
    interval = settings.train_interval_seconds
    delay = (
        backoff_delay(
            status.consecutive_failures, base_seconds=min(backoff_base_seconds, interval), cap_seconds=interval
        )
        if error is not None
        else interval
    )
    if outcome is not None:
        log.info("%s; next round in %.0f s", outcome.reason, delay)
    else:
        log.warning("next attempt in %.0f s (failure %d)", delay, status.consecutive_failures)
    return Attempt(at=now, status=status, health=health, delay=delay)


def run_service(
    settings: Settings,
    *,
    round_fn: RoundFunction,
    publish_health: Callable[[HealthChecked], None],
    stop: Stop,
    clock: Callable[[], datetime] = utc_now,
    wait: Callable[[float], Any] | None = None,
    backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
    max_attempts: int | None = None,
) -> list[Attempt]:
    """Attempt rounds until ``stop`` is set (or ``max_attempts``); returns the attempts made.

    ``wait(seconds)`` defaults to ``stop.wait`` (returns early when stopped).
    """
    wait = wait or stop.wait
    status = load_status(Path(settings.data_dir))
    attempts: list[Attempt] = []
    while not stop.is_set() and (max_attempts is None or len(attempts) < max_attempts):
        attempt = run_once(
            settings,
            status,
            round_fn=round_fn,
            publish_health=publish_health,
            clock=clock,
            backoff_base_seconds=backoff_base_seconds,
        )
        attempts.append(attempt)
        status = attempt.status
        if stop.is_set() or (max_attempts is not None and len(attempts) >= max_attempts):
            break
        wait(attempt.delay)
    log.info("trainer service stopped after %d attempt(s)", len(attempts))
    return attempts


def install_stop_signals(stop: StopFlag) -> None:
    """SIGTERM and SIGINT set ``stop`` (main thread only; a ``StopFlag``, see ``streams.stop_flag``)."""
    stop_on_signals(
        stop,
        on_signal=lambda signum: log.info("received %s: stopping after the current round", signal.Signals(signum).name),
    )


def kafka_health_publisher(settings: Settings, codec: Any) -> Callable[[HealthChecked], None]:
    """Send HealthChecked with the project's producer (``streams.producer``), waiting for the ack."""
    from streams.producer import EventProducer, make_producer  # lazy: loads confluent-kafka only when used

    producer = EventProducer(make_producer(settings), codec, settings)

    def publish(event: HealthChecked) -> None:
        producer.send(event)
        producer.flush(15.0)

    return publish
