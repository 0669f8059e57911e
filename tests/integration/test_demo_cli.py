"""``rlsizer demo`` as a user runs it: SIGTERM (or Ctrl-C) mid-run leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(entry.name))
    return kids


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_demo_stops_every_process(tmp_path: Path, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLSIZER_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlsizer",
            "demo",
            "--data-dir",
            str(tmp_path / "demo"),
            "--no-progress",
            "--learn-bars",
            "300",
            "--serve-bars",
            "50",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "learning phase" in line:
            break
    else:
        proc.kill()
        pytest.fail("demo never reached the learning phase:\n" + "".join(lines))
    kids = children_of(proc.pid)
    assert len(kids) >= 4, f"expected SeaweedFS, tansu, registry and the worker, got {kids}"
    proc.send_signal(sig)
    proc.wait(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(k) for k in kids):
        time.sleep(0.2)
    assert not [k for k in kids if alive(k)], "processes left running after the demo stopped"
