"""The worker's Prometheus metrics (served on ``/metrics``) and the state behind ``/health``.

One ``CollectorRegistry`` per app, no module-level collectors, so several apps in a
process (tests, benchmarks) never share counters. Metric names match the provisioned
Grafana dashboard (``deploy/grafana/dashboards/rlsizer.json``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from schemas.events import SizeDecided

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
MULTIPLIER_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    started: float = field(default_factory=time.time)
    last_decision: float | None = None
    decisions_count: int = 0

    def __post_init__(self) -> None:
        r = self.registry
        self.decisions = Counter("rlsizer_decisions", "Sizing decisions made, by policy", ["policy"], registry=r)
        self.latency = Histogram("rlsizer_decision_latency_seconds", "Features plus sizing compute time",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.multiplier = Histogram("rlsizer_multiplier", "Size multipliers decided", buckets=MULTIPLIER_BUCKETS, registry=r)
        self.dead_letters = Counter("rlsizer_dead_letters", "Inputs rejected to the dead-letter topic, by reason",
                                    ["reason"], registry=r)
        self.model_info = Gauge("rlsizer_model_info", "The model version serving (1) ", ["version"], registry=r)
        self.model_swaps = Counter("rlsizer_model_swaps", "Model hot swaps, by result", ["result"], registry=r)
        self.outcomes = Counter("rlsizer_outcomes", "Trades closed (TradeClosed derived from fills)", registry=r)
        self.reconciled = Counter("rlsizer_reconciled_decisions",
                                  "Undecided signals the reconciler re-published to be decided", registry=r)
        self._decisions_by_policy: dict[str, Any] = {}

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

    def serving(self, version: str | None) -> None:
        self.model_info.clear()
        self.model_info.labels(version or "rules").set(1)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format; aiohttp adds the charset itself, so it is not in the type."""
        return generate_latest(self.registry), "text/plain; version=0.0.4"

    def health(self, slot: Any, threads_alive: bool) -> dict[str, Any]:
        policy = getattr(slot, "current", None)
        return {
            "status": "ok" if threads_alive else "degraded",
            "model_version": getattr(policy, "version", None),
            "policy": "MODEL" if policy is not None else "RULES",
            "decisions": self.decisions_count,
            "seconds_since_last_decision": None if self.last_decision is None else round(time.time() - self.last_decision, 3),
            "uptime_seconds": round(time.time() - self.started, 1),
        }
