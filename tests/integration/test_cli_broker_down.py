"""With no broker at RLSIZER_KAFKA_BOOTSTRAP, replay, train and backtest each say so in one line on stderr.

Before: about 2,300 librdkafka "Connect ... failed" lines came first, and replay and backtest
printed their error to stdout. The commands run as processes (librdkafka writes its log to
file descriptor 2 itself), side by side, each waiting out the replay's 30 s metadata timeout.
Each has a warehouse already, as after a first replay (a first one also logs, at INFO, that it
creates it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlsizer.stack.processes import free_port
from trainer.warehouse.store import default_path, open_warehouse

pytestmark = pytest.mark.integration

COMMANDS = {
    "replay": ["replay", "--no-progress"],
    "train": ["train", "--no-progress"],
    "backtest": ["backtest", "--from", "2024-01-01", "--to", "2024-02-01"],
}


def test_broker_down_is_one_line_on_stderr_per_command(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLSIZER_")}
    running = {}
    for name, argv in COMMANDS.items():
        open_warehouse(default_path(tmp_path / name)).close()
        env_one = env | {"RLSIZER_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "RLSIZER_DATA_DIR": str(tmp_path / name)}
        running[name] = subprocess.Popen(
            [sys.executable, "-m", "rlsizer", *argv],
            env=env_one,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    for name, proc in running.items():
        out, err = proc.communicate(timeout=120)
        lines = err.splitlines()
        print(
            f"{name}: exit {proc.returncode}, {len(out.splitlines())} stdout and {len(lines)} stderr line(s): {err.strip()}"
        )
        assert proc.returncode == 1, (name, out, err[-2000:])
        assert out == "", (name, out)
        assert len(lines) == 1 and lines[0].startswith(f"rlsizer {name}: "), (name, lines[:5], len(lines))
        assert "broker" in lines[0] and f"Kafka at 127.0.0.1:{port}" in lines[0], lines[0]
