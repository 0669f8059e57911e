"""Pure health checks: facts in, a verdict out. No I/O here.

Each check takes what was observed (timestamps, byte counts, lag numbers) and the
thresholds, and returns a ``CheckResult`` with a status, a detail a person can act
on, and the recovery action the monitor should take (``None`` when nothing is to
be done). The monitor (``rlsizer.health.monitor``) gathers the facts, runs the
action and publishes ``HealthChecked``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final, Protocol

OK: Final = "OK"
WARN: Final = "WARN"
FAIL: Final = "FAIL"

ACTION_REFRESH_MODEL: Final = "refresh_model"
ACTION_RESTORE_MODEL: Final = "restore_model"
ACTION_RETRY_TRAINING: Final = "retry_training"
ACTION_CLEAN_DISK: Final = "clean_disk"

# A worker's own HealthChecked reports (model verification) are keyed "worker/<id>" on the health topic.
WORKER_REPORT_KEY_PREFIX: Final = "worker/"


def worker_report_key(worker_id: str) -> bytes:
    return f"{WORKER_REPORT_KEY_PREFIX}{worker_id}".encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    check: str
    status: str
    detail: str
    action: str | None = None


class HealthReport(Protocol):
    """What a ``HealthChecked`` carries that the checks read (kept free of the event classes)."""

    ts_event: datetime
    check: str
    status: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketHours:
    """Hours (UTC) and weekdays (Mon=0) during which signals are expected."""

    open: time = time(0, 0)
    close: time = time(23, 59, 59)
    weekdays: frozenset[int] = frozenset(range(5))

    def is_open(self, now: datetime) -> bool:
        return now.weekday() in self.weekdays and self.open <= now.time() <= self.close


def _age(now: datetime, then: datetime) -> timedelta:
    return now - then


def _fmt(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"


def data_freshness(
    now: datetime,
    last_signal: datetime | None,
    *,
    max_age: timedelta = timedelta(hours=2),
    hours: MarketHours = MarketHours(),
) -> CheckResult:
    """Signals should arrive within ``max_age`` while the market is open."""
    if not hours.is_open(now):
        return CheckResult(check="data_freshness", status=OK, detail="market closed; no signals expected")
    if last_signal is None:
        return CheckResult(check="data_freshness", status=WARN, detail="no signal seen yet since the monitor started")
    age = _age(now, last_signal)
    if age > max_age:
        return CheckResult(
            check="data_freshness",
            status=FAIL,
            detail=f"last signal {_fmt(age)} ago (limit {_fmt(max_age)}) during market hours: check the bot and its adapter",
        )
    return CheckResult(check="data_freshness", status=OK, detail=f"last signal {_fmt(age)} ago")


def model_freshness(
    now: datetime,
    champion_created: datetime | None,
    *,
    max_age: timedelta = timedelta(hours=48),
    unverified: str | None = None,
) -> CheckResult:
    """The served champion should be younger than ``max_age``; a stale one triggers a refresh.

    ``unverified``: why the champion's manifest could not be verified; then its age is unknown (a
    manifest that fails its signature says nothing), and re-announcing it would not help.
    """
    if unverified is not None:
        return CheckResult(
            check="model_freshness", status=WARN, detail=f"champion age unknown: {unverified} (see model_integrity)"
        )
    if champion_created is None:
        return CheckResult(
            check="model_freshness",
            status=WARN,
            detail="no model loaded: the rule policy is serving",
            action=ACTION_REFRESH_MODEL,
        )
    age = _age(now, champion_created)
    if age > max_age:
        return CheckResult(
            check="model_freshness",
            status=WARN,
            detail=f"champion is {_fmt(age)} old (limit {_fmt(max_age)})",
            action=ACTION_REFRESH_MODEL,
        )
    return CheckResult(check="model_freshness", status=OK, detail=f"champion is {_fmt(age)} old")


def model_integrity(verified: bool, detail: str, *, restorable: bool = True) -> CheckResult:
    """A model that failed verification is never served; the monitor restores the last good one.

    ``restorable``: a worker's local copy is what failed, so ``restore_model`` can repair it. A
    champion that fails in the registry itself (S3) has no automatic repair: the detail says what to do.
    """
    if verified:
        return CheckResult(check="model_integrity", status=OK, detail=detail)
    return CheckResult(
        check="model_integrity", status=FAIL, detail=detail, action=ACTION_RESTORE_MODEL if restorable else None
    )


def worker_reports(now: datetime, reports: Iterable[tuple[str, HealthReport]], *, window: timedelta) -> CheckResult:
    """What the workers said about themselves (``(worker, report)`` pairs read from the health topic).

    The latest report of each worker and check within ``window`` counts: a FAIL (a refused
    alias, a forged announcement, a model refused) stays until the same worker reports that
    check OK again, or until it is older than ``window``.
    """
    latest: dict[tuple[str, str], HealthReport] = {}
    for worker, report in reports:
        if now - report.ts_event > window:
            continue
        key = (worker, report.check)
        if key not in latest or report.ts_event >= latest[key].ts_event:
            latest[key] = report
    if not latest:
        return CheckResult(check="worker_reports", status=OK, detail=f"no worker reported in the last {_fmt(window)}")
    bad = sorted((r for r in latest.values() if r.status != OK), key=lambda r: (r.status != FAIL, r.ts_event))
    if not bad:
        workers = sorted({w for w, _ in latest})
        return CheckResult(
            check="worker_reports",
            status=OK,
            detail=f"latest reports of {len(workers)} worker(s) OK ({', '.join(workers)})",
        )
    status = FAIL if bad[0].status == FAIL else WARN
    detail = "; ".join(f"{r.status} {r.check} {_fmt(now - r.ts_event)} ago: {r.detail}" for r in bad)
    return CheckResult(check="worker_reports", status=status, detail=detail)


def latest_training(
    service: tuple[datetime | None, datetime | None, int], registry_newest: datetime | None
) -> tuple[datetime | None, int]:
    """``(last success, consecutive failures)`` from the trainer service's status and the model registry.

    ``service``: the trainer service's last attempt, last success and consecutive failures;
    ``registry_newest``: when the newest model version was created, by the service or by a
    manual ``rlsizer train`` alike. A round published after the service's last attempt
    clears the service's failures.
    """
    last_attempt, last_success, failures = service
    newest = max((t for t in (last_success, registry_newest) if t is not None), default=None)
    if registry_newest is not None and (last_attempt is None or registry_newest >= last_attempt):
        failures = 0
    return newest, failures


def training_activity(
    now: datetime, last_success: datetime | None, consecutive_failures: int, *, max_age: timedelta = timedelta(hours=8)
) -> CheckResult:
    if consecutive_failures > 0:
        return CheckResult(
            check="training_activity",
            status=FAIL if consecutive_failures >= 3 else WARN,
            detail=f"{consecutive_failures} consecutive training failure(s)",
            action=ACTION_RETRY_TRAINING,
        )
    if last_success is None:
        return CheckResult(check="training_activity", status=WARN, detail="no training round has completed yet")
    age = _age(now, last_success)
    if age > max_age:
        return CheckResult(
            check="training_activity",
            status=WARN,
            detail=f"last training round {_fmt(age)} ago (limit {_fmt(max_age)})",
            action=ACTION_RETRY_TRAINING,
        )
    return CheckResult(check="training_activity", status=OK, detail=f"last training round {_fmt(age)} ago")


def disk_space(
    used_bytes: int, total_bytes: int, *, warn_fraction: float = 0.85, fail_fraction: float = 0.95
) -> CheckResult:
    if total_bytes <= 0:
        return CheckResult(check="disk_space", status=FAIL, detail="disk size unknown")
    fraction = used_bytes / total_bytes
    detail = f"{fraction:.0%} of {total_bytes / 2**30:.1f} GiB used"
    if fraction >= fail_fraction:
        return CheckResult(check="disk_space", status=FAIL, detail=detail, action=ACTION_CLEAN_DISK)
    if fraction >= warn_fraction:
        return CheckResult(check="disk_space", status=WARN, detail=detail, action=ACTION_CLEAN_DISK)
    return CheckResult(check="disk_space", status=OK, detail=detail)


def reachability(component: str, error: str | None) -> CheckResult:
    if error is None:
        return CheckResult(check=f"reach_{component}", status=OK, detail=f"{component} answered")
    return CheckResult(check=f"reach_{component}", status=FAIL, detail=f"{component} unreachable: {error}")


def consumer_lag(lag: int, *, warn: int = 1_000, fail: int = 100_000) -> CheckResult:
    status = FAIL if lag >= fail else WARN if lag >= warn else OK
    return CheckResult(check="consumer_lag", status=status, detail=f"{lag} messages behind")


def backoff_delay(failures: int, *, base_seconds: float = 60.0, cap_seconds: float = 6 * 3600.0) -> float:
    """Exponential backoff after ``failures`` consecutive failures: base, 2·base, 4·base ... capped."""
    if failures <= 0:
        return 0.0
    return min(cap_seconds, base_seconds * 2.0 ** (failures - 1))
