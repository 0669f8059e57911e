"""The crash drill: every signal gets exactly one decision through kills, joins and leaves of workers.

``run_drill(settings, plan)`` runs worker processes (``rlsizer worker --id N``, as ``up``
starts them) against a stack, feeds bars and signals of many symbols at a steady rate
-- re-sending some signals a little later, as a bot whose request timed out does --
and, while it feeds, SIGKILLs workers (and starts them again, as ``up`` does), starts a
worker that joins the group and stops one so it leaves. Then it waits for every
signal's answer and reads the decisions and dead-letter topics whole (to their true
ends, ``streams.end_offsets``) and counts:

- ``lost``: signals with neither a decision nor a dead letter;
- ``conflicting``: signals with two different decisions;
- ``duplicates``: decisions sent more than once for a signal (identical; a re-sent
  signal gets its decision again, by contract, so these are expected).

``rlsizer drill`` runs it as a long soak on an embedded stack of its own;
``tests/integration/test_crash_drill.py`` runs a short one in the suite.
"""

from __future__ import annotations

import signal as signals
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from config.settings import Settings
from rlsizer.stack.processes import ManagedProcess, wait_ready
from rlsizer.stack.services import READY_TIMEOUT, spawn_worker
from schemas.codec import EventCodec
from schemas.events import BarClosed, EventRejected, SignalRaised, SizeDecided
from streams.consumer import make_consumer
from streams.end_offsets import end_offsets
from streams.producer import EventProducer, make_producer

T0: Final = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)
STRATEGIES: Final = ("S1", "S5", "S9", "S13")

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Action:
    at: float  # fraction of the signals sent when it happens
    what: str  # kill (SIGKILL, then started again), join (a new worker), leave (SIGTERM, not restarted)
    worker: str


DEFAULT_ACTIONS: Final = (
    Action(0.15, "kill", "0"),
    Action(0.35, "join", "2"),
    Action(0.50, "kill", "0"),
    Action(0.65, "leave", "2"),
    Action(0.80, "kill", "1"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DrillPlan:
    symbols: int = 12
    signals: int = 6000
    rate: float = 200.0  # signals per second
    resend_every: int = 50  # one signal in this many is sent again ...
    resend_after_s: float = 2.0  # ... this long after
    bars_every: int = 3  # a bar of the symbol before every n-th of its signals
    actions: tuple[Action, ...] = DEFAULT_ACTIONS
    settle_s: float = 60.0  # after the feed: wait at most this long for the last answers
    workers: tuple[str, ...] = ("0", "1")  # running at the start


@dataclass(slots=True)
class DrillReport:
    signals: int = 0
    resent: int = 0
    decided: int = 0
    dead_lettered: int = 0
    lost: int = 0
    conflicting: int = 0
    duplicates: int = 0
    kills: int = 0
    joins: int = 0
    leaves: int = 0
    seconds: float = 0.0
    lost_ids: list[str] = field(default_factory=list)

    @property
    def rebalances(self) -> int:
        """Group membership changes the drill caused (a kill and its restart are one leave and one join)."""
        return 2 * self.kills + self.joins + self.leaves

    def ok(self) -> bool:
        return self.lost == 0 and self.conflicting == 0

    def summary(self) -> str:
        return (
            f"signals {self.signals:,} (re-sent {self.resent:,}), decided {self.decided:,}, dead-lettered "
            f"{self.dead_lettered:,}, lost {self.lost:,}, conflicting {self.conflicting:,}, duplicates "
            f"{self.duplicates:,}; kills {self.kills}, joins {self.joins}, leaves {self.leaves}, rebalances "
            f"{self.rebalances}; {self.seconds:.0f} s"
        )


class _Answers:
    """Reads the decisions and dead-letter topics from their start, in a thread; counts per signal."""

    def __init__(self, settings: Settings, codec: EventCodec) -> None:
        self.settings, self.codec = settings, codec
        self.multipliers: dict[str, list[float]] = {}
        self.rejected: set[str] = set()
        self.other_rejections = 0
        self._stop = threading.Event()
        self._consumer = make_consumer(settings, f"drill-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
        topics = [settings.topic("decisions"), settings.topic("dlq")]
        parts = []
        for topic in topics:
            meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self._parts = parts
        self._consumer.assign(parts)
        self._positions: dict[tuple[str, int], int] = {}
        self._thread = threading.Thread(target=self._run, name="drill-answers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(1000, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading answers: {err.str()}")
                    continue
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if topic is not None and partition is not None and offset is not None:  # a consumed record has them
                    self._positions[(topic, partition)] = offset + 1
                event = self.codec.decode(msg.value())
                if isinstance(event, SizeDecided):
                    self.multipliers.setdefault(event.signal_id, []).append(event.multiplier)
                elif isinstance(event, EventRejected):
                    try:
                        head = self.codec.decode(event.raw_value) if event.raw_value else None
                    except Exception:
                        head = None
                    if isinstance(head, SignalRaised):
                        self.rejected.add(head.signal_id)
                    else:
                        self.other_rejections += 1

    def answered(self, ids: set[str]) -> set[str]:
        return {i for i in ids if i in self.multipliers or i in self.rejected}

    def read_to_end(self, timeout_s: float = 30.0) -> None:
        """Until the reader has passed every partition's true end as of now."""
        ends = end_offsets(
            self.settings.kafka_config(), [(p.topic, p.partition) for p in self._parts], mode=self.settings.end_offsets
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._positions.get(tp, 0) >= end for tp, end in ends.items()):
                return
            time.sleep(0.1)
        behind = {
            f"{t}[{p}]": (self._positions.get((t, p), 0), end)
            for (t, p), end in ends.items()
            if self._positions.get((t, p), 0) < end
        }
        raise RuntimeError(f"the answers reader did not reach the topics' ends within {timeout_s:g} s: {behind}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


class _Workers:
    """Worker processes by id, started without waiting (the feed keeps its pace); ready checked at the end."""

    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings, self.say = settings, say
        self.procs: dict[str, ManagedProcess] = {}
        self.pending: list[tuple[ManagedProcess, Callable[[], bool]]] = []
        self.stopping: list[threading.Thread] = []
        self.ended: set[int] = set()  # pids the drill killed or stopped

    def start(self, wid: str, *, wait: bool = False) -> None:
        proc, ready = spawn_worker(self.settings, worker_id=wid)
        self.procs[wid] = proc
        if wait:
            wait_ready(proc, ready, READY_TIMEOUT, "report ready")
        else:
            self.pending.append((proc, ready))

    def kill(self, wid: str) -> None:
        """SIGKILL worker ``wid``, and wait until it is gone (its data dir is free for the next one)."""
        proc = self.procs.get(wid)
        if proc is not None and proc.alive():
            self.ended.add(proc.pid)
            proc.popen.send_signal(signals.SIGKILL)
            proc.popen.wait(10)

    def stop(self, wid: str) -> None:
        proc = self.procs.get(wid)
        if proc is not None:
            self.ended.add(proc.pid)
            thread = threading.Thread(target=proc.stop, kwargs={"timeout": 30}, daemon=True)
            thread.start()
            self.stopping.append(thread)

    def check_started(self) -> None:
        """Every worker started and not killed since got ready (raises ``StackError`` otherwise)."""
        for proc, ready in self.pending:
            if proc.pid not in self.ended:
                wait_ready(proc, ready, READY_TIMEOUT, "report ready")

    def stop_all(self) -> None:
        for thread in self.stopping:
            thread.join(60)
        for proc in self.procs.values():
            proc.stop(timeout=30)


def feed(plan: DrillPlan, run_id: str) -> list[BarClosed | SignalRaised]:
    """The events to send, in order: per symbol, a bar before every ``bars_every``-th signal."""
    out: list[BarClosed | SignalRaised] = []
    symbols = [f"D{run_id[:4].upper()}{k:02d}" for k in range(plan.symbols)]
    for i in range(plan.signals):
        k, step = i % plan.symbols, i // plan.symbols
        symbol, ts = symbols[k], T0 + timedelta(minutes=step)
        price = 100.0 + (step % 17) - (k % 5)
        if step % plan.bars_every == 0:
            out.append(
                BarClosed(
                    ts_event=ts,
                    symbol=symbol,
                    interval="1m",
                    open=price,
                    high=price + 1.0,
                    low=price - 1.0,
                    close=price + 0.25,
                    volume=1000.0 + step,
                )
            )
        side = "BUY" if (i // 7) % 2 == 0 else "SELL"
        stop = price - 1.5 if side == "BUY" else price + 1.5
        out.append(
            SignalRaised(
                ts_event=ts + timedelta(seconds=1),
                signal_id=f"drill-{run_id}-{i}",
                strategy_id=STRATEGIES[i % len(STRATEGIES)],
                symbol=symbol,
                side=side,
                price=price,
                atr=1.2,
                base_qty=10.0,
                stop_price=stop,
                adapter="drill",
            )
        )
    return out


def run_drill(settings: Settings, codec: EventCodec, plan: DrillPlan = DrillPlan(), *, say: Say = print) -> DrillReport:
    """Run the drill against the stack ``settings`` names (its topics must exist); see the module doc."""
    started = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    report = DrillReport()
    workers = _Workers(settings, say)
    answers = _Answers(settings, codec)
    producer = EventProducer(make_producer(settings), codec, settings)
    try:
        for wid in plan.workers:
            workers.start(wid, wait=True)
        say(
            f"drill {run_id}: {len(plan.workers)} workers ready; feeding {plan.signals:,} signals of "
            f"{plan.symbols} symbols at {plan.rate:g}/s"
        )
        events = feed(plan, run_id)
        sent: list[SignalRaised] = []
        resends: list[tuple[float, SignalRaised]] = []
        actions = sorted(plan.actions, key=lambda a: a.at)
        t0 = time.monotonic()
        for event in events:
            if isinstance(event, SignalRaised):
                n = len(sent)
                while actions and n >= actions[0].at * plan.signals:
                    _act(actions.pop(0), workers, report, say)
                ahead = t0 + n / plan.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                sent.append(event)
                if n % plan.resend_every == plan.resend_every - 1:
                    resends.append((time.monotonic() + plan.resend_after_s, event))
            producer.send(event)
            while resends and resends[0][0] <= time.monotonic():
                producer.send(resends.pop(0)[1])
                report.resent += 1
        for _, event in resends:
            producer.send(event)
            report.resent += 1
        producer.flush()
        workers.check_started()
        ids = {s.signal_id for s in sent}
        report.signals = len(ids)
        say(f"drill {run_id}: fed in {time.monotonic() - t0:.0f} s; waiting up to {plan.settle_s:g} s for answers")
        deadline = time.monotonic() + plan.settle_s
        while len(answers.answered(ids)) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
        answers.read_to_end()
        decided = {i: answers.multipliers[i] for i in ids if i in answers.multipliers}
        report.decided = len(decided)
        report.dead_lettered = len(ids & answers.rejected)
        lost = sorted(ids - answers.answered(ids), key=lambda i: int(i.rsplit("-", 1)[1]))
        report.lost, report.lost_ids = len(lost), lost[:20]
        report.conflicting = sum(1 for m in decided.values() if len(set(m)) > 1)
        report.duplicates = sum(len(m) - 1 for m in decided.values())
    finally:
        workers.stop_all()
        answers.close()
        report.seconds = time.monotonic() - started
    return report


def _act(action: Action, workers: _Workers, report: DrillReport, say: Say) -> None:
    say(f"  {action.what} worker {action.worker}")
    if action.what == "kill":
        workers.kill(action.worker)
        report.kills += 1
        workers.start(action.worker)  # as ``up`` starts a dead worker again
    elif action.what == "join":
        workers.start(action.worker)
        report.joins += 1
    elif action.what == "leave":
        workers.stop(action.worker)
        report.leaves += 1
    else:
        raise ValueError(f"unknown drill action {action.what!r}")


def scaled(plan: DrillPlan, *, signals: int | None = None, rate: float | None = None) -> DrillPlan:
    return replace(plan, signals=signals or plan.signals, rate=rate or plan.rate)
