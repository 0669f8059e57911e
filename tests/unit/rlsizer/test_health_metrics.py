"""The monitor's /metrics: each check's latest status as rlsizer_health_status, read when scraped."""

from __future__ import annotations

import urllib.request

from prometheus_client import generate_latest

from agents import health
from agents.health import CheckResult
from rlsizer.health.metrics import registry_for, serve
from rlsizer.health.monitor import HealthMonitor, ScheduledCheck
from rlsizer.stack.processes import free_port


def _monitor(statuses: dict[str, str]) -> HealthMonitor:
    def probe(name: str):
        return lambda now: CheckResult(check=name, status=statuses[name], detail="d")

    return HealthMonitor(
        checks=[
            ScheduledCheck(component="model" if n.startswith("model") else "kafka", name=n, probe=probe(n))
            for n in statuses
        ],
        publish=lambda e: None,
    )


def _samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rlsizer_health_status{")
    }


def test_each_checks_latest_status_is_a_gauge_0_1_2():
    statuses = {"reach_kafka": health.OK, "model_freshness": health.WARN, "model_integrity": health.FAIL}
    monitor = _monitor(statuses)
    registry = registry_for(monitor)
    assert _samples(generate_latest(registry).decode()) == {}  # nothing run yet: no sample, not a fake OK
    monitor.run_all()
    assert _samples(generate_latest(registry).decode()) == {
        'rlsizer_health_status{check="reach_kafka",component="kafka"}': 0.0,
        'rlsizer_health_status{check="model_freshness",component="model"}': 1.0,
        'rlsizer_health_status{check="model_integrity",component="model"}': 2.0,
    }
    statuses["model_integrity"] = health.OK  # recovered: the next run shows it
    monitor.run_all()
    assert (
        _samples(generate_latest(registry).decode())['rlsizer_health_status{check="model_integrity",component="model"}']
        == 0.0
    )


def test_served_over_http_until_shut_down():
    monitor = _monitor({"reach_kafka": health.FAIL})
    monitor.run_all()
    port = free_port()
    server = serve(monitor, "127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert _samples(text) == {'rlsizer_health_status{check="reach_kafka",component="kafka"}': 2.0}


def test_rlsizer_monitor_with_its_metrics_port_taken_says_so_and_exits_2(tmp_path, monkeypatch, capsys):
    import socket

    from rlsizer.cli import main

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    monkeypatch.setenv("RLSIZER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RLSIZER_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached: it stops before the first check
    monkeypatch.setenv("RLSIZER_MONITOR_WEB_PORT", str(port))
    try:
        assert main(["monitor"]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert (
        f"rlsizer monitor: cannot serve health metrics on 127.0.0.1:{port} (RLSIZER_MONITOR_WEB_PORT): Address already in use"
        in err
    ), err
