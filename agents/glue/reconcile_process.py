"""The reconciler (``agents.glue.reconcile``) in a child process of the worker.

Why a process. The reconciler reads every signal and every decision (two records
per signal) in Python. As a thread of the worker it held the worker's GIL for
that: the Faust event loop waited, and the bench worker made 3,200 decisions/s
with it against 3,630/s without it (``bench/bench_worker.py``, 20k signals, 3
paired runs: 3,064/3,463/3,074 against 3,876/3,357/3,662). In its own process
the same work runs beside the event loop instead of in its turns; it still takes CPU
from the two cores, so the gain measured against the thread is smaller (20k signals,
3 alternated pairs with the failures-only producer of ``agents.glue.rdkafka_producer``
also in: 2,334/3,038/3,359 against 2,075/2,965/3,259; at 3k signals within the noise).

The parent side (``ReconcilerProcess``) starts ``python -m agents.glue.reconcile_process``
with the worker's settings in ``RLSIZER_*`` variables, stops it with SIGTERM
(the child commits and closes its consumer), and starts it again if it died.
The child's output goes to the worker's stdout/stderr; the number of signals it
re-published comes back through a pipe (a line per change, the increase), which the
parent reads without blocking (``take_republished``; the worker counts them as
``rlsizer_reconciled_decisions_total``). The child asks the kernel
for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``) and also watches its
parent's pid, so a SIGKILLed worker leaves no reconciler behind; the next
worker's reconciler resumes from the committed offsets (the oldest undecided
signal), as the thread did.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, Final

from streams.settings import Settings
from streams.stop_flag import StopFlag, stop_on_signals

log = logging.getLogger(__name__)

CONSUMER: Final[Mapping[str, Any]] = {
    "partition.assignment.strategy": "range",  # partition p of signals and of decisions on the same member
    # It acts after seconds (``after_s``), so it fetches in large, rare requests: each fetch
    # costs the broker CPU on this machine's tansu (~0.1 ms a request), shared with the worker.
    "fetch.wait.max.ms": 500,
    "fetch.min.bytes": 256 * 1024,
}
_PR_SET_PDEATHSIG: Final = 1
STEP_S: Final = 0.5  # how often the child reports, checks its parent and its consuming thread
STOP_TIMEOUT_S: Final = 10.0


class ReconcilerProcess:
    """The parent's handle on one reconciler child: ``start``, ``stop``, ``restart_if_dead``."""

    def __init__(self, settings: Settings, *, group_id: str, after_s: float, loglevel: str = "INFO") -> None:
        self._settings = settings
        self._args = [sys.executable, "-m", __name__, "--group", group_id, "--after-s", repr(after_s),
                      "--loglevel", loglevel]
        self._popen: subprocess.Popen[bytes] | None = None
        self._reports: int | None = None  # read end of the child's count pipe
        self._partial = b""
        self._republished = 0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        self._read_reports()  # a restarted child's predecessor: what it reported before it died still counts
        self._close_reports()
        env = {**os.environ, **self._settings.to_env()}
        read_end, write_end = os.pipe()
        try:
            self._popen = subprocess.Popen([*self._args, "--parent", str(os.getpid()), "--report-fd", str(write_end)],
                                           stdin=subprocess.DEVNULL, env=env, pass_fds=(write_end,))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        self._reports = read_end
        log.info("reconciler started (pid %d)", self._popen.pid)

    def take_republished(self) -> int:
        """Signals the child re-published since the last call (read from its pipe, never waiting)."""
        self._read_reports()
        taken, self._republished = self._republished, 0
        return taken

    def _read_reports(self) -> None:
        while self._reports is not None:
            try:
                chunk = os.read(self._reports, 4096)
            except BlockingIOError:
                return
            if not chunk:  # the child is gone and its pipe empty
                self._close_reports()
                return
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            self._republished += sum(int(line) for line in lines if line.strip())

    def _close_reports(self) -> None:
        if self._reports is not None:
            os.close(self._reports)
            self._reports, self._partial = None, b""

    def restart_if_dead(self) -> bool:
        """Start the child again when it exited without being asked to; True if it did."""
        if self._popen is None or self.alive():
            return False
        log.error("reconciler (pid %d) exited with code %s: starting it again", self._popen.pid, self._popen.returncode)
        self.restarts += 1
        self.start()
        return True

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the child and wait; its last reports stay readable by ``take_republished``."""
        popen, self._popen = self._popen, None
        if popen is None or popen.poll() is not None:
            return
        popen.terminate()
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("reconciler (pid %d) did not stop within %.0f s: killed", popen.pid, timeout)
            popen.kill()
            popen.wait(5)


# --- the child ---------------------------------------------------------------------------


def _die_with_parent(parent: int) -> bool:
    """Ask for SIGTERM when the parent dies; False if it is already gone (adopted by another process)."""
    with contextlib.suppress(Exception):  # not Linux: the pid watch below still ends the child
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def run(settings: Settings, *, group_id: str, after_s: float, parent: int, report_fd: int | None = None) -> int:
    """Reconcile until SIGTERM/SIGINT or until the parent is gone; 0 after a clean stop.

    ``report_fd``: a pipe to the parent; each time the re-published count rises, the rise is written as a line.
    """
    from agents.glue.reconcile import Reconciler
    from agents.strategy_map import StrategyMap
    from streams.codec_factory import make_codec
    from streams.consumer import make_consumer
    from streams.producer import make_producer

    stop = StopFlag()  # not threading.Event: see streams.stop_flag (this child hung on one)
    stop_on_signals(stop)
    if not _die_with_parent(parent):
        log.warning("reconciler: parent %d is gone before the start; exiting", parent)
        return 0
    reconciler = Reconciler(
        settings, make_codec(settings),
        consumer=make_consumer(settings, group_id, **CONSUMER),
        producer=make_producer(settings), after_s=after_s,
        decidable=StrategyMap.from_spec(settings.strategy_map).__contains__,  # the worker dead-letters the others
    )
    reported = 0

    def report() -> None:
        nonlocal reported
        now = reconciler.republished
        if report_fd is not None and now > reported:
            with contextlib.suppress(OSError):  # the parent is gone: nobody to count them
                os.write(report_fd, b"%d\n" % (now - reported))
            reported = now

    reconciler.start()
    try:
        while not stop.wait(STEP_S):
            report()
            if os.getppid() != parent:
                log.warning("reconciler: parent %d is gone; stopping", parent)
                break
            if not reconciler.running():
                log.error("reconciler: its consuming thread stopped")
                return 1
    finally:
        reconciler.stop()
        report()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.splitlines()[0])
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--after-s", type=float, required=True, help="seconds before an undecided signal is due")
    parser.add_argument("--parent", type=int, required=True, help="pid of the worker: the child ends with it")
    parser.add_argument("--report-fd", type=int, help="pipe to the parent for the re-published count")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper(), format="[reconciler %(process)d] %(levelname)s %(name)s: %(message)s")
    return run(Settings.from_env(), group_id=args.group, after_s=args.after_s, parent=args.parent,
               report_fd=args.report_fd)


if __name__ == "__main__":
    sys.exit(main())
