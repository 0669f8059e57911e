"""The health monitor: runs each check on its own interval, recovers, publishes ``HealthChecked``.

Checks are pure (``agents.health``); probes gather the facts they need
(``rlsizer.health.probes``); recovery actions are injected callables keyed by the
action name a check asks for (restore or refresh the model, retry training, clean
up disk). An action that raises is reported in the event's ``action`` field as
failed, and the monitor goes on: it must never be the thing that stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agents.health import FAIL, CheckResult
from schemas.events import HealthChecked, utc_now

log = logging.getLogger(__name__)

Probe = Callable[[datetime], CheckResult]
Action = Callable[[], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledCheck:
    component: str
    name: str
    probe: Probe
    interval: timedelta = timedelta(minutes=30)


@dataclass
class HealthMonitor:
    checks: Sequence[ScheduledCheck]
    publish: Callable[[HealthChecked], None]
    actions: Mapping[str, Action] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    _next_due: dict[str, datetime] = field(default_factory=dict)
    latest: dict[str, HealthChecked] = field(default_factory=dict)

    def run_all(self) -> list[HealthChecked]:
        return [self._run(check) for check in self.checks]

    def run_due(self) -> list[HealthChecked]:
        now = self.clock()
        return [self._run(c) for c in self.checks if self._next_due.get(c.name, now) <= now]

    def seconds_until_next(self) -> float:
        now = self.clock()
        due = [self._next_due.get(c.name, now) for c in self.checks]
        return max(0.0, min(((d - now).total_seconds() for d in due), default=60.0))

    def _run(self, check: ScheduledCheck) -> HealthChecked:
        now = self.clock()
        self._next_due[check.name] = now + check.interval
        try:
            result = check.probe(now)
        except Exception as exc:  # a probe that breaks is itself a finding
            result = CheckResult(check=check.name, status=FAIL, detail=f"probe failed: {type(exc).__name__}: {exc}")
        action_taken = self._recover(result)
        event = HealthChecked(
            ts_event=now,
            component=check.component,
            check=result.check,
            status=result.status,
            detail=result.detail,
            action=action_taken,
        )
        self.latest[f"{check.component}/{result.check}"] = event
        try:
            self.publish(event)
        except Exception:
            log.exception("could not publish health event %s/%s", check.component, result.check)
        if result.status != "OK":
            log.warning(
                "health %s/%s %s: %s%s",
                check.component,
                result.check,
                result.status,
                result.detail,
                f" -> {action_taken}" if action_taken else "",
            )
        return event

    def _recover(self, result: CheckResult) -> str | None:
        if result.action is None:
            return None
        action = self.actions.get(result.action)
        if action is None:
            return f"{result.action}: no handler configured"
        try:
            return f"{result.action}: {action()}"
        except Exception as exc:
            return f"{result.action} failed: {type(exc).__name__}: {exc}"

    def overall(self) -> str:
        statuses = {e.status for e in self.latest.values()}
        return "FAIL" if "FAIL" in statuses else "WARN" if "WARN" in statuses else "OK"
