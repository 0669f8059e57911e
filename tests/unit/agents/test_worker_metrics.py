"""The worker's decision metrics count by policy, whatever order the policies come in."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.glue.metrics import WorkerMetrics
from schemas.events import SizeDecided


def decision(policy: str, multiplier: float) -> SizeDecided:
    ts = datetime(2024, 1, 2, tzinfo=UTC)
    return SizeDecided(
        signal_id="s",
        symbol="AAPL",
        strategy_id="S1",
        multiplier=multiplier,
        qty=multiplier,
        policy=policy,
        reason="r",
        model_version=None,
        latency_us=250,
        ts_event=ts,
        ts_init=ts,
    )


def test_decisions_counted_per_policy_and_observed():
    metrics = WorkerMetrics()
    for policy, m in [("RULES", 1.0), ("MODEL", 0.5), ("RULES", 2.0), ("FALLBACK", 1.0), ("RULES", 0.25)]:
        metrics.decided(decision(policy, m))
    text = metrics.exposition()[0].decode()
    counts = {
        p: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rlsizer_decisions_total{")
        for p in [line.split('"')[1]]
    }
    assert counts == {"RULES": 3.0, "MODEL": 1.0, "FALLBACK": 1.0}
    assert "rlsizer_multiplier_count 5.0" in text and "rlsizer_decision_latency_seconds_count 5.0" in text
    assert metrics.decisions_count == 5


def test_the_dashboard_queries_only_metrics_the_worker_or_the_monitor_exports():
    """Each ``rlsizer_*`` series a Grafana panel queries comes from a worker's or the monitor's /metrics."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    dashboard = json.loads((root / "deploy/grafana/dashboards/rlsizer.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queried = {name for e in exprs for name in re.findall(r"\brlsizer_[a-z_]+", e)}
    from prometheus_client import generate_latest

    from rlsizer.health.metrics import registry_for
    from rlsizer.health.monitor import HealthMonitor

    text = WorkerMetrics().exposition()[0].decode()
    text += generate_latest(registry_for(HealthMonitor(checks=[], publish=lambda e: None))).decode()
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    suffixes = ("_total", "_bucket", "_count", "_sum")
    served = {q for q in queried if q in exported or any(q.endswith(s) and q[: -len(s)] in exported for s in suffixes)}
    assert queried == served, f"dashboard queries nobody exports: {sorted(queried - served)}"
    assert {"rlsizer_input_rewinds_total", "rlsizer_consumer_lag_messages", "rlsizer_health_status"} <= served


def test_consumer_lag_per_input_topic_from_read_offsets_and_high_watermarks():
    from collections import namedtuple

    from agents.glue.metrics import consumer_lag

    TP = namedtuple("TP", "topic partition")
    sig0, sig1, bars0, changelog0, unread = (
        TP("x.signals", 0),
        TP("x.signals", 1),
        TP("x.bars", 0),
        TP("w-decided-changelog", 0),
        TP("x.signals", 2),
    )
    high = {sig0: 100, sig1: 7, bars0: 50, changelog0: 999, unread: 40}
    read = {sig0: 89, sig1: 6, bars0: 49, changelog0: 0}  # offsets of the last records read
    lag = consumer_lag([sig0, sig1, bars0, changelog0, unread], high.get, read, {"x.signals", "x.bars"})
    assert lag == {"x.signals": 10, "x.bars": 0}  # 100-90 + 7-7; nothing read yet on partition 2: unknown, left out
    assert consumer_lag([sig0], {sig0: None}.get, read, {"x.signals"}) == {}  # no fetch answered yet


def test_consumer_lag_is_served_when_scraped_and_a_failing_source_gives_no_sample():
    metrics = WorkerMetrics()
    text = metrics.exposition()[0].decode()
    assert "# TYPE rlsizer_consumer_lag_messages gauge" in text and "rlsizer_consumer_lag_messages{" not in text
    lags = iter([{"x.signals": 3, "x.bars": 0}, {"x.signals": 5}])
    metrics.lag = lambda: next(lags)
    assert 'rlsizer_consumer_lag_messages{topic="x.signals"} 3.0' in metrics.exposition()[0].decode()
    assert 'rlsizer_consumer_lag_messages{topic="x.signals"} 5.0' in metrics.exposition()[0].decode()  # read per scrape

    def broken() -> dict[str, int]:
        raise RuntimeError("consumer not started")

    metrics.lag = broken
    assert "rlsizer_consumer_lag_messages{" not in metrics.exposition()[0].decode()


def test_health_fails_while_the_latest_model_check_fails_and_names_it():
    from agents.sizing import PolicySlot
    from schemas.events import HealthChecked

    metrics, slot = WorkerMetrics(), PolicySlot()
    assert metrics.health(slot, True)["status"] == "ok" and metrics.health(slot, True)["model_check"] is None
    ts = datetime(2024, 1, 2, tzinfo=UTC)
    metrics.model_checked(
        HealthChecked(
            ts_event=ts,
            component="worker",
            check="model_integrity",
            status="FAIL",
            detail="worker 0: forged announcement: ... names v9 champion",
        )
    )
    state = metrics.health(slot, True)
    assert state["status"] == "fail" and "forged announcement" in state["model_check"]["detail"]
    metrics.model_checked(
        HealthChecked(
            ts_event=ts,
            component="worker",
            check="model_integrity",
            status="OK",
            detail="worker 0: model v1 already served",
        )
    )
    assert metrics.health(slot, True)["status"] == "ok"
