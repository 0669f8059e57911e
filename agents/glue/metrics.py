"""The worker's Prometheus metrics (served on ``/metrics``) and the state behind ``/health``.

One ``CollectorRegistry`` per app, no module-level collectors, so several apps in a
process (tests, benchmarks) never share counters. Metric names match the provisioned
Grafana dashboard (``deploy/grafana/dashboards/rlsizer.json``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN, SizeDecided

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_MULTIPLIER_STEP = 0.25
MULTIPLIER_BUCKETS = tuple(  # 0.25, 0.5, ..., 2.0: the serving range in quarters
    MULTIPLIER_MIN + k * _MULTIPLIER_STEP
    for k in range(round((MULTIPLIER_MAX - MULTIPLIER_MIN) / _MULTIPLIER_STEP) + 1)
)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    started: float = field(default_factory=time.time)
    last_decision: float | None = None
    decisions_count: int = 0
    model_check: Any = None  # the latest model_integrity HealthChecked of this worker (``model_checked``)

    def __post_init__(self) -> None:
        r = self.registry
        self.decisions = Counter("rlsizer_decisions", "Sizing decisions made, by policy", ["policy"], registry=r)
        self.latency = Histogram(
            "rlsizer_decision_latency_seconds", "Features plus sizing compute time", buckets=LATENCY_BUCKETS, registry=r
        )
        self.multiplier = Histogram(
            "rlsizer_multiplier", "Size multipliers decided", buckets=MULTIPLIER_BUCKETS, registry=r
        )
        self.dead_letters = Counter(
            "rlsizer_dead_letters", "Inputs rejected to the dead-letter topic, by reason", ["reason"], registry=r
        )
        self.model_info = Gauge("rlsizer_model_info", "The model version serving (1) ", ["version"], registry=r)
        self.model_swaps = Counter("rlsizer_model_swaps", "Model hot swaps, by result", ["result"], registry=r)
        self.outcomes = Counter("rlsizer_outcomes", "Trades closed (TradeClosed derived from fills)", registry=r)
        self.registry_waits = Counter(
            "rlsizer_registry_waits", "Times an input waited because the schema registry did not answer", registry=r
        )
        self.rewinds = Counter(
            "rlsizer_input_rewinds",
            "Times the worker sent its consumer back to an input record Faust had dropped",
            registry=r,
        )
        self.reread_inputs = Counter(
            "rlsizer_inputs_reread",
            "Inputs read again after a crash or broker restart and skipped: their symbol's book had applied them",
            registry=r,
        )
        self._decisions_by_policy: dict[str, Any] = {}
        self.lag: Callable[[], Mapping[str, int]] | None = None  # set by the app: records behind, per input topic
        r.register(_LagCollector(self))
        # decided signals this worker keeps in memory (the `decided` table, bounded by agents.retention)
        self.decided_kept = Gauge(
            "rlsizer_decided_signals", "Decided signals held in this worker's decided table", registry=r
        )
        self.decided_expired = Counter(
            "rlsizer_decided_expired",
            "Decided signals forgotten: older than their symbol's retention horizon",
            registry=r,
        )

    def decided(self, decision: SizeDecided) -> None:
        by_policy = self._decisions_by_policy.get(decision.policy)
        if by_policy is None:  # ``labels()`` builds and locks per call: its child is kept per policy
            by_policy = self._decisions_by_policy[decision.policy] = self.decisions.labels(decision.policy)
        by_policy.inc()
        self.latency.observe(decision.latency_us / 1e6)
        self.multiplier.observe(decision.multiplier)
        self.last_decision = time.time()
        self.decisions_count += 1

    def rejected(self, kind: str) -> None:
        self.dead_letters.labels(kind).inc()

    def closed(self) -> None:
        self.outcomes.inc()

    def reread(self) -> None:
        self.reread_inputs.inc()

    def expired(self, n: int) -> None:
        self.decided_expired.inc(n)

    def serving(self, version: str | None) -> None:
        self.model_info.clear()
        self.model_info.labels(version or "rules").set(1)

    def model_checked(self, report: Any) -> None:
        """Keep the latest ``HealthChecked`` of the worker's model loader or poller for ``/health``."""
        self.model_check = report

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format; aiohttp adds the charset itself, so it is not in the type."""
        return generate_latest(self.registry), "text/plain; version=0.0.4"

    def health(self, slot: Any, threads_alive: bool) -> dict[str, Any]:
        """``/health``: "fail" while the latest model check FAILs (a refused alias, a forged announcement, ...)."""
        policy = getattr(slot, "current", None)
        check = self.model_check
        status = "fail" if check is not None and check.status == "FAIL" else "ok" if threads_alive else "degraded"
        return {
            "status": status,
            "model_version": getattr(policy, "version", None),
            "policy": "MODEL" if policy is not None else "RULES",
            "decisions": self.decisions_count,
            "seconds_since_last_decision": None
            if self.last_decision is None
            else round(time.time() - self.last_decision, 3),
            "uptime_seconds": round(time.time() - self.started, 1),
            "model_check": None
            if check is None
            else {"status": check.status, "detail": check.detail, "at": check.ts_event.isoformat()},
        }


LAG_METRIC = "rlsizer_consumer_lag_messages"
LAG_HELP = "Records on the worker's assigned partitions not yet read, per input topic (from its last fetch)"


def consumer_lag(
    assigned: Iterable[Any],
    highwater: Callable[[Any], int | None],
    read_offset: Mapping[Any, int | None],
    topics: Collection[str],
) -> dict[str, int]:
    """Records between each assigned partition's last read offset and its high watermark, summed per topic.

    ``assigned``: topic-partitions (``.topic``); only ``topics`` count (not table changelogs). A partition
    with nothing read yet, or no fetch answered yet, is left out: its lag is unknown, not zero.
    """
    lag: dict[str, int] = {}
    for tp in assigned:
        if tp.topic not in topics:
            continue
        high, read = highwater(tp), read_offset.get(tp)
        if high is None or read is None:
            continue
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - (read + 1))
    return lag


class _LagCollector:
    """``rlsizer_consumer_lag_messages{topic}``, computed when scraped from ``WorkerMetrics.lag``."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(LAG_METRIC, LAG_HELP, labels=["topic"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(LAG_METRIC, LAG_HELP, labels=["topic"])
        source = self._metrics.lag
        if source is not None:
            try:
                by_topic = source()
            except Exception:  # a consumer not started or being rebalanced: no sample this scrape
                log.debug("consumer lag unavailable", exc_info=True)
                by_topic = {}
            for topic, value in sorted(by_topic.items()):
                family.add_metric([topic], value)
        yield family
