"""``rlsizer monitor`` with RLSIZER_MONITOR_WEB_PORT against the real stack: its checks on /metrics."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import replace

import pytest

from rlsizer.stack.processes import free_port
from rlsizer.stack.services import start_monitor

pytestmark = pytest.mark.integration


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def test_the_monitor_serves_each_checks_status_and_stops_cleanly(settings, tmp_path):
    port = free_port()
    s = replace(settings, monitor_web_port=port, data_dir=tmp_path)
    proc = start_monitor(s)
    try:
        text = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the first round of checks runs right after the start
            text = _scrape(port)
            if text and 'check="reach_kafka"' in text and 'check="model_integrity"' in text:
                break
            time.sleep(0.5)
        assert text is not None, proc.log_tail()
        assert 'rlsizer_health_status{check="reach_kafka",component="kafka"} 0.0' in text, text
        assert 'rlsizer_health_status{check="reach_s3",component="s3"} 0.0' in text, text
    finally:
        proc.popen.terminate()
        code = proc.popen.wait(30)
    assert code == 0, proc.log_tail()
    assert _scrape(port) is None  # the endpoint went with the monitor
