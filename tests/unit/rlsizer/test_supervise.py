"""``rlsizer up``'s supervision: dead services start again with backoff, a dead server ends it."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from rlsizer.stack.processes import StackError
from rlsizer.stack.supervise import MAX_DELAY_S, STABLE_AFTER_S, Supervisor, restart_delay


@dataclass
class Proc:
    name: str
    pid: int
    running: bool = True
    popen: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(returncode=None))

    def alive(self) -> bool:
        return self.running

    def die(self, code: int = -9) -> None:
        self.running, self.popen.returncode = False, code

    def log_tail(self, lines: int = 15) -> str:
        return f"last lines of {self.name}"


class World:
    def __init__(self) -> None:
        self.now = 0.0
        self.said: list[str] = []
        self.pids = iter(range(100, 200))
        self.fail_starts = 0
        self.server = Proc("tansu", 1)
        self.worker = Proc("worker-0", next(self.pids))
        self.sup = Supervisor([self.server], [(self.start, self.worker)], clock=lambda: self.now, say=self.said.append)

    def start(self) -> Proc:
        if self.fail_starts:
            self.fail_starts -= 1
            raise StackError("worker-0 exited with code 1 before report ready")
        return Proc("worker-0", next(self.pids))

    def at(self, t: float) -> object:
        self.now = t
        return self.sup.check()

    @property
    def current(self) -> Proc:
        return self.sup.services[0].proc  # type: ignore[return-value]


def test_restart_delays_double_up_to_the_cap() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert restart_delay(50) == MAX_DELAY_S


def test_a_dead_service_is_started_again_after_the_delay_and_the_stack_goes_on() -> None:
    w = World()
    assert w.at(5.0) is None and w.said == []
    w.worker.die()
    assert w.at(6.0) is None
    assert "worker-0 (pid 100) stopped unexpectedly with code -9 after 6 s; restarting it in 1 s" in w.said[0]
    assert "last lines of worker-0" in w.said[0]
    assert w.at(6.5) is None and w.current is w.worker  # not yet
    assert w.at(7.0) is None and w.current.pid == 101 and w.current.alive()
    assert w.said[-1] == "rlsizer up: worker-0 restarted, pid 101"
    assert [p.pid for p in w.sup.processes()] == [1, 101]  # what `up` stops at the end


def test_quick_deaths_wait_longer_and_a_stable_run_resets_the_delay() -> None:
    w = World()
    t = 10.0
    delays = []
    for _ in range(4):  # dies right after each start
        w.current.die()
        w.at(t)
        delays.append(w.sup.services[0].restart_at - t)  # type: ignore[operator]
        t += delays[-1]
        w.at(t)
    assert delays == [1.0, 2.0, 4.0, 8.0]
    w.current.die()
    w.at(t + STABLE_AFTER_S)  # ran a minute: back to the first delay
    assert w.sup.services[0].restart_at == t + STABLE_AFTER_S + 1.0


def test_a_failed_start_is_tried_again_later_with_a_longer_wait() -> None:
    w = World()
    w.worker.die()
    w.at(100.0)
    w.fail_starts = 1
    assert w.at(101.0) is None
    assert (
        "worker-0 did not start again (worker-0 exited with code 1 before report ready); next try in 2 s" in w.said[-1]
    )
    assert w.at(102.5) is None and not w.current.alive()
    assert w.at(103.0) is None and w.current.alive() and w.current.pid == 101


def test_a_dead_server_is_returned_and_not_restarted() -> None:
    w = World()
    w.server.die(1)
    assert w.at(1.0) is w.server
    assert w.said == []


@pytest.mark.parametrize("code", [0, 1, -15])
def test_any_exit_of_a_service_counts_as_a_death(code: int) -> None:
    w = World()
    w.worker.die(code)
    w.at(1.0)
    assert f"with code {code} after 1 s" in w.said[0]


def test_a_stuck_service_is_killed_and_started_again() -> None:
    world = World()
    reasons = iter([None, "holds rlsizer.inputs [2] lag 40 for 31 s without applying anything (stalled)"])
    world.sup.services[0].stuck = lambda: next(reasons, None)
    killed: list[int] = []
    first = world.current
    first.popen = SimpleNamespace(
        returncode=None, kill=lambda: (killed.append(first.pid), first.die()), wait=lambda t: 0
    )
    assert world.at(1.0) is None and first.alive()  # probed: fine
    assert world.at(3.0) is None and first.alive()  # not probed again before PROBE_SECONDS
    assert world.at(6.5) is None and killed == [first.pid]  # probed: stuck -> killed, its death noted
    assert any("is stuck: holds rlsizer.inputs [2]" in line for line in world.said)
    world.at(8.0)
    assert world.current is not first and world.current.alive()


def test_the_worker_probe_reads_a_stall_from_health_and_tolerates_a_short_silence() -> None:
    import http.server
    import json
    import threading

    from config.settings import Settings
    from rlsizer.stack.services import worker_stuck_probe

    answer = {"status": "ok", "progress": "applying"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    now = [0.0]
    probe = worker_stuck_probe(Settings(worker_web_port=server.server_address[1]), clock=lambda: now[0])
    try:
        assert probe() is None
        answer.update(status="stalled", progress="holds rlsizer.inputs [0] lag 9 for 40 s")
        assert probe() == "holds rlsizer.inputs [0] lag 9 for 40 s"
    finally:
        server.shutdown()
        server.server_close()
    assert probe() is None  # silent: not yet
    now[0] = 59.0
    assert probe() is None
    now[0] = 61.0
    assert "has not answered for 61 s" in (probe() or "")
