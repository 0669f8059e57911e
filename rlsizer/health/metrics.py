"""The health monitor's ``/metrics``: ``rlsizer_health_status{component,check}`` for Prometheus.

The gauge is read from the monitor's latest result per check when scraped (0 OK,
1 WARN, 2 FAIL), so it never disagrees with the ``HealthChecked`` events the
monitor publishes. A check not run yet has no sample. Served by
``prometheus_client``'s own HTTP server on a thread (``serve``), only when
``RLSIZER_MONITOR_WEB_PORT`` is set: the Grafana dashboard's health panel reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily

from schemas.events import HealthChecked

STATUS_METRIC: Final = "rlsizer_health_status"
STATUS_VALUE: Final = {"OK": 0, "WARN": 1, "FAIL": 2}
_HELP: Final = "Latest result of each health check: 0 OK, 1 WARN, 2 FAIL"


class HasLatest(Protocol):
    latest: dict[str, HealthChecked]


class HealthStatusCollector:
    def __init__(self, monitor: HasLatest) -> None:
        self._monitor = monitor

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(STATUS_METRIC, _HELP, labels=["component", "check"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(STATUS_METRIC, _HELP, labels=["component", "check"])
        for event in sorted(list(self._monitor.latest.values()), key=lambda e: (e.component, e.check)):
            family.add_metric([event.component, event.check], STATUS_VALUE.get(event.status, STATUS_VALUE["FAIL"]))
        yield family


def registry_for(monitor: HasLatest) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(HealthStatusCollector(monitor))
    return registry


def serve(monitor: HasLatest, host: str, port: int) -> WSGIServer:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; ``shutdown()`` the server to stop it."""
    server, _thread = start_http_server(port, addr=host, registry=registry_for(monitor))
    return server
