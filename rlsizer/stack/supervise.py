"""What ``rlsizer up`` does when one of its processes dies.

The servers (SeaweedFS, tansu, the schema registry) hold the data: when one dies,
``up`` says which and stops everything, as a container platform would restart the
whole stack. The services beside them (worker, trainer, health monitor) hold no
state of their own, their state is in Kafka and S3. One that dies is started
again, after a delay that doubles with each death in quick succession (1 s, 2 s,
4 s, ... up to a minute; back to 1 s once it has run for a minute), so a worker
killed by the OOM killer or a crash resumes from its committed offsets and its
changelogs, while one failing on start does not spin.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.health import backoff_delay
from rlsizer.stack.processes import StackError


class Process(Protocol):  # the part of ``ManagedProcess`` supervision reads
    name: str

    @property
    def pid(self) -> int: ...

    @property
    def popen(self) -> Any: ...

    def alive(self) -> bool: ...

    def log_tail(self, lines: int = 15) -> str: ...


FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
STABLE_AFTER_S = 60.0
PROBE_SECONDS = 5.0


@dataclass
class Service:
    """A restartable process: how to start it, the current one, and its restart schedule."""

    start: Callable[[], Process]
    proc: Process
    started_at: float
    quick_deaths: int = 0  # deaths in a row, each before STABLE_AFTER_S of running
    restart_at: float | None = None  # set while it is dead and waiting for its restart
    stuck: Callable[[], str | None] | None = None  # alive but stuck? the reason (a worker's stall), else None
    next_probe: float = 0.0


def restart_delay(quick_deaths: int) -> float:
    """Seconds before the restart after ``quick_deaths`` (>= 1) deaths in a row: 1, 2, 4, ... 60."""
    return backoff_delay(quick_deaths, base_seconds=FIRST_DELAY_S, cap_seconds=MAX_DELAY_S)


class Supervisor:
    """One ``check()`` per poll: the first dead server, else restarts the dead services when due."""

    def __init__(
        self,
        servers: Sequence[Process],
        services: Sequence[tuple[Callable[[], Process], Process]],
        *,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] | None = None,
        probes: dict[int, Callable[[], str | None]] | None = None,
    ) -> None:
        """``probes``: by index in ``services``, what tells that service is alive but stuck (checked every
        ``PROBE_SECONDS``); a stuck one is killed and started again like one that died."""
        self.servers = list(servers)
        now = clock()
        self.services = [
            Service(start, proc, now, stuck=(probes or {}).get(i)) for i, (start, proc) in enumerate(services)
        ]
        self._clock = clock
        self._say = say or (lambda line: print(line, file=sys.stderr, flush=True))

    def processes(self) -> list[Process]:
        """The current process of every server and service (what to stop at the end)."""
        return self.servers + [s.proc for s in self.services]

    def check(self) -> Process | None:
        for proc in self.servers:
            if not proc.alive():
                return proc
        for service in self.services:
            if service.restart_at is None and service.stuck is not None and self._clock() >= service.next_probe:
                service.next_probe = self._clock() + PROBE_SECONDS
                if service.proc.alive() and (why := service.stuck()) is not None:
                    self._say(f"rlsizer up: {service.proc.name} (pid {service.proc.pid}) is stuck: {why}; killing it")
                    service.proc.popen.kill()
                    service.proc.popen.wait(10)
            if service.restart_at is None and not service.proc.alive():
                self._died(service)
            if service.restart_at is not None and self._clock() >= service.restart_at:
                self._restart(service)
        return None

    def _died(self, service: Service) -> None:
        now = self._clock()
        ran = now - service.started_at
        service.quick_deaths = service.quick_deaths + 1 if ran < STABLE_AFTER_S else 1
        delay = restart_delay(service.quick_deaths)
        service.restart_at = now + delay
        proc = service.proc
        self._say(
            f"rlsizer up: {proc.name} (pid {proc.pid}) stopped unexpectedly with code "
            f"{proc.popen.returncode} after {ran:.0f} s; restarting it in {delay:.0f} s. Log tail:\n"
            f"{proc.log_tail()}"
        )

    def _restart(self, service: Service) -> None:
        name = service.proc.name
        try:
            service.proc = service.start()
        except StackError as exc:  # it died or hung while starting: try again later, waiting longer
            service.quick_deaths += 1
            delay = restart_delay(service.quick_deaths)
            service.restart_at = self._clock() + delay
            self._say(f"rlsizer up: {name} did not start again ({exc}); next try in {delay:.0f} s")
            return
        service.started_at, service.restart_at = self._clock(), None
        self._say(f"rlsizer up: {name} restarted, pid {service.proc.pid}")
