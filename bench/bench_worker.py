"""Worker throughput and latency as ratios to Faust pass-throughs, measured in one run.

One embedded stack (tansu on memory storage), three apps, each on its own topic
prefix and run as a subprocess:

- ``python -m bench.passthrough_app --stock``: what a user would write first -- one
  agent, inputs -> decisions, bytes unchanged, faust-streaming as it comes;
- ``python -m bench.passthrough_app``: the same agent on the worker's own broker
  settings and transport (the stricter baseline);
- ``python -m agents.worker --id bench``: the real worker, first fed ~300 real
  daily bars per symbol (``rlsizer.reference.data``) so features are computed
  from real state, then ``SignalRaised`` (S1..S14, real prices and ATR).

The worker is measured in its steady state: its per-symbol account keeps every
decided-but-unclosed signal of the last 7 days up to ``agents.state.OPEN_LEN``
(1024), serialised and changelogged at every commit (a decision itself is an
append, ``agents.rows``). No fills close them here, so the warm-up sends
``OPEN_LEN`` signals per symbol first: throughput and latency then see the same
state (a busy symbol's in production). ``--fresh`` warms with
200 signals only (lighter state, and the latency run then sees more than the
throughput run did).

Both run for the whole bench (idle while the other is measured) and the phases
interleave (throughput of both, then latency of both), so drift in the load of
this shared machine hits both alike. Measured from this process, as a bot sees it:

- throughput: N pre-encoded signals published as fast as possible; signals/s
  from the first publish to the last decision received; ``--rounds`` rounds (5),
  the apps alternating which goes first, and the table shows the round whose
  ratio is the median, every round's ratio listed under it (one round swung from
  0.33 to 0.54 between runs of the same code);
- latency: signals published at a steady rate (default 1,000/s, lowered to 80%
  of the slower app's throughput when that cannot keep up; printed) for a few
  seconds; per-signal publish -> decision received, matched by ``signal_id``
  (the pass-through echoes the signal, so its echo carries the same id).

Both apps run on the same transport, ``agents.glue.faust.transport``, including its
consumer loop (``agents.glue.faust.drain``: records reach the agents without tasks of
their own, where Faust's loop makes four and an ``asyncio.wait`` per record). That
loop made both apps faster, not the ratio better: in 13 runs alternated with the code
before it (2026-11-26/27) the worker made 2,834-5,796 signals/s against 2,089-3,813,
the pass-through 7,782-13,219 against 4,455-8,708, throughput ratio 0.33-0.54 against
0.35-0.72. So the pass-through is a stricter baseline than a stock Faust agent.

Prints the three apps' figures, the ratios worker/tuned and worker/stock, and
PASS/MISS against the targets (throughput >= 0.5x and p99 <= 2x the stock Faust
pass-through's, what a user would otherwise pick). Exit status 0 whatever the
figures; non-zero when something failed to run (an app died, decisions missing).

    .venv/bin/python bench/bench_worker.py [--signals 3000] [--rounds 5] [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.admin import AdminClient

from agents.app import app_id
from agents.state import OPEN_LEN
from config.settings import Settings
from rlsizer.reference.data import interval_seconds, load_dataset
from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from rlsizer.stack.processes import ManagedProcess, spawn
from schemas.codec import EventCodec
from schemas.events import BarClosed, SignalRaised, SizeDecided
from streams.codec_factory import make_codec
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.topics import ensure_topics, event_key, new_topics

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ("AAPL", "MSFT", "GOOG", "IBM")
STRATEGIES = tuple(f"S{i}" for i in range(1, 15))
SUSTAINED_SHARE = 0.8  # an app sustains this share of its measured maximum throughput
TARGET_THROUGHPUT_RATIO, TARGET_P99_RATIO = 0.5, 2.0


class BenchError(RuntimeError):
    """Something did not run: an app died or decisions did not arrive in time."""


# --- input -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Market:
    """One symbol's warm-up bars and the last close/ATR its signals are priced from."""

    symbol: str
    bars: tuple[BarClosed, ...]
    close: float
    atr: float
    ts: datetime


def market(name: str, n_bars: int) -> Market:
    frame = load_dataset(name)
    prev_close = frame["close"].shift()
    true_range = np.maximum(
        frame["high"] - frame["low"], np.maximum((frame["high"] - prev_close).abs(), (frame["low"] - prev_close).abs())
    )
    atr = float(true_range.rolling(14).mean().iloc[-1])
    step = timedelta(seconds=interval_seconds(frame.attrs["interval"]))
    symbol, interval = frame.attrs["symbol"], frame.attrs["interval"]
    tail = frame.iloc[-n_bars:]
    bars = tuple(
        BarClosed(
            ts_event=ts.to_pydatetime() + step,
            symbol=symbol,
            interval=interval,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=v,
        )
        for ts, o, h, lo, c, v in zip(
            tail.index, tail["open"], tail["high"], tail["low"], tail["close"], tail["volume"], strict=True
        )
    )
    return Market(symbol, bars, bars[-1].close, atr, bars[-1].ts_event)


def signal(m: Market, i: int, tag: str) -> SignalRaised:
    """Signal ``i`` for ``m``: strategies and sides rotate, price within 0.5% of the last close.

    Raised at the close of the last warm-up bar (``ts_event`` = that bar's), as a
    bot raises it (``rlsizer.reference.loop`` does the same).
    """
    buy = i % 2 == 0
    price = m.close * (1 + ((i % 21) - 10) / 2000)
    stop = price - 2 * m.atr if buy else price + 2 * m.atr
    target = price + 3 * m.atr if buy else max(price - 3 * m.atr, price / 2)
    return SignalRaised(
        ts_event=m.ts,
        signal_id=f"bench-{tag}-{m.symbol}-{i}",
        strategy_id=STRATEGIES[i % len(STRATEGIES)],
        symbol=m.symbol,
        side="BUY" if buy else "SELL",
        price=price,
        atr=m.atr,
        score=(i * 7 % 11) / 10 - 0.5,
        q_score=0.05 + (i % 10) / 10,
        base_qty=100.0,
        stop_price=stop,
        target_price=target,
        adapter="bench",
    )


Encoded = tuple[str, bytes, bytes]  # signal_id, key, value


def encode_signals(codec: EventCodec, topic: str, markets: Sequence[Market], n: int, tag: str) -> list[Encoded]:
    out: list[Encoded] = []
    for i in range(n):
        sig = signal(markets[i % len(markets)], i // len(markets), tag)
        out.append((sig.signal_id, event_key(sig), codec.encode(topic, sig)))
    return out


# --- one app under test ------------------------------------------------------------------


class DecisionReader:
    """Reads the decisions topic from the beginning on a thread; first receipt time per ``signal_id``."""

    def __init__(self, settings: Settings, codec: EventCodec) -> None:
        self.codec = codec
        self.received: dict[str, float] = {}
        self.policies: Counter[str] = Counter()
        self._stop = threading.Event()
        self._consumer = make_consumer(settings, f"bench-{uuid.uuid4().hex[:8]}")
        topic = settings.topic("decisions")
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self._thread = threading.Thread(target=self._run, name=f"reader-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.05)  # returns as soon as a record is there
            if msg is None or msg.error():
                continue
            now = time.perf_counter()
            event = self.codec.decode(msg.value())
            if isinstance(event, SizeDecided):
                self.policies[event.policy] += 1
            self.received.setdefault(event.signal_id, now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


@dataclasses.dataclass
class AppUnderTest:
    name: str
    settings: Settings
    proc: ManagedProcess
    codec: EventCodec
    producer: EventProducer
    reader: DecisionReader

    def check_alive(self) -> None:
        if not self.proc.alive():
            raise BenchError(
                f"{self.name} exited with code {self.proc.popen.returncode}; log {self.proc.log_path}:\n"
                f"{self.proc.log_tail(30)}"
            )

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def publish(self, batch: Sequence[Encoded], rate: float | None = None) -> dict[str, float]:
        """Publish ``batch`` (at ``rate``/s, or as fast as possible); publish time per ``signal_id``."""
        topic, sent = self.settings.topic("inputs"), {}
        start = time.perf_counter()
        for i, (sid, key, value) in enumerate(batch):
            if rate:
                ahead = start + i / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            sent[sid] = time.perf_counter()
            self.producer.send_raw(topic, key, value)
        self.producer.flush()
        return sent

    def wait_for(self, ids: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        received = self.reader.received
        while True:
            missing = sum(1 for i in ids if i not in received)
            if not missing:
                return
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name}: {missing} of {len(ids)} signals without an answer after {timeout:.0f}s; "
                    f"log {self.proc.log_path}:\n{self.proc.log_tail(30)}"
                )
            time.sleep(0.02)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU so far of process ``pid`` (all its threads) and of its running child processes."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # a child that has just exited
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return own + sum(process_cpu_seconds(child) for child in child_pids(pid))


def child_pids(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += map(int, (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def start_app(name: str, module_args: Sequence[str], base: Settings, workdir: Path) -> AppUnderTest:
    settings = dataclasses.replace(
        base, topic_prefix=f"bench{name[:2]}{uuid.uuid4().hex[:6]}", worker_web_port=0, data_dir=workdir / name
    )
    ensure_topics(AdminClient(settings.kafka_config()), new_topics(settings, include_schemas=False))
    env = {**settings.to_env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = spawn(name, [sys.executable, "-m", *module_args], workdir / f"{name}.log", env)
    codec = make_codec(settings)
    return AppUnderTest(
        name,
        settings,
        proc,
        codec,
        EventProducer(make_producer(settings), codec, settings),
        DecisionReader(settings, codec),
    )


def committed_total(settings: Settings, group: str, short_topic: str) -> int:
    consumer = make_consumer(settings, group)
    try:
        topic = settings.topic(short_topic)
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def wait_bars_consumed(app: AppUnderTest, n_bars: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (done := committed_total(app.settings, app_id(app.settings), "inputs")) < n_bars:
        app.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{app.name}: only {done} of {n_bars} warm-up bars committed after {timeout:.0f}s")
        time.sleep(0.2)


# --- measurements ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Throughput:
    per_s: float
    cpu_ms_per_signal: float
    broker_cpu_ms_per_signal: float


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_signal: float
    broker_cpu_ms_per_signal: float


def measure_throughput(app: AppUnderTest, batch: Sequence[Encoded], timeout: float, broker_pid: int) -> Throughput:
    cpu, broker = app.cpu_seconds(), process_cpu_seconds(broker_pid)
    sent = app.publish(batch)
    app.wait_for(list(sent), timeout)
    first, last = min(sent.values()), max(app.reader.received[i] for i in sent)
    return Throughput(
        len(batch) / (last - first),
        (app.cpu_seconds() - cpu) * 1000 / len(batch),
        (process_cpu_seconds(broker_pid) - broker) * 1000 / len(batch),
    )


def measure_latency(
    app: AppUnderTest, batch: Sequence[Encoded], rate: float, timeout: float, broker_pid: int
) -> Latency:
    cpu, broker = app.cpu_seconds(), process_cpu_seconds(broker_pid)
    sent = app.publish(batch, rate)
    app.wait_for(list(sent), timeout)
    ms = np.array([(app.reader.received[i] - t) * 1000 for i, t in sent.items()])
    return Latency(
        rate,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(ms.max()),
        (app.cpu_seconds() - cpu) * 1000 / len(batch),
        (process_cpu_seconds(broker_pid) - broker) * 1000 / len(batch),
    )


PT, STOCK, WK = "passthrough", "stock", "worker"


def throughput_ratio(round_: dict[str, Throughput], baseline: str = PT) -> float:
    return round_[WK].per_s / round_[baseline].per_s


def median_round(rounds: Sequence[dict[str, Throughput]]) -> dict[str, Throughput]:
    """The round whose worker/pass-through throughput ratio is the median (the lower of the middle two)."""
    return sorted(rounds, key=throughput_ratio)[(len(rounds) - 1) // 2]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    thr: dict[str, Throughput],
    lat: dict[str, Latency],
    rate_note: str,
    policies: Counter[str],
    rounds: Sequence[dict[str, Throughput]],
) -> str:
    """Figures of the three apps; ratios worker/tuned and worker/stock, targets against the stock baseline
    (what a user would otherwise pick) and, informative, the tuned one."""
    rate = lat[PT].rate

    def r(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else "-"

    rows = [
        (
            "throughput (signals/s)",
            *(f"{thr[k].per_s:,.0f}" for k in (STOCK, PT, WK)),
            r(thr[WK].per_s, thr[PT].per_s),
            r(thr[WK].per_s, thr[STOCK].per_s),
            f">= {TARGET_THROUGHPUT_RATIO}",
            verdict(throughput_ratio(thr, STOCK) >= TARGET_THROUGHPUT_RATIO),
        ),
        (
            "  app CPU ms per signal",
            *(f"{thr[k].cpu_ms_per_signal:.2f}" for k in (STOCK, PT, WK)),
            r(thr[WK].cpu_ms_per_signal, thr[PT].cpu_ms_per_signal),
            r(thr[WK].cpu_ms_per_signal, thr[STOCK].cpu_ms_per_signal),
            "",
            "",
        ),
        (
            "  broker CPU ms per signal",
            *(f"{thr[k].broker_cpu_ms_per_signal:.2f}" for k in (STOCK, PT, WK)),
            r(thr[WK].broker_cpu_ms_per_signal, thr[PT].broker_cpu_ms_per_signal),
            r(thr[WK].broker_cpu_ms_per_signal, thr[STOCK].broker_cpu_ms_per_signal),
            "",
            "",
        ),
        (
            f"latency p50 ms @ {rate:,.0f}/s",
            *(f"{lat[k].p50_ms:.1f}" for k in (STOCK, PT, WK)),
            r(lat[WK].p50_ms, lat[PT].p50_ms),
            r(lat[WK].p50_ms, lat[STOCK].p50_ms),
            "",
            "",
        ),
        (
            f"latency p99 ms @ {rate:,.0f}/s",
            *(f"{lat[k].p99_ms:.1f}" for k in (STOCK, PT, WK)),
            r(lat[WK].p99_ms, lat[PT].p99_ms),
            r(lat[WK].p99_ms, lat[STOCK].p99_ms),
            f"<= {TARGET_P99_RATIO}",
            verdict(lat[WK].p99_ms <= TARGET_P99_RATIO * lat[STOCK].p99_ms),
        ),
        ("latency max ms", *(f"{lat[k].max_ms:.1f}" for k in (STOCK, PT, WK)), "", "", "", ""),
        (
            "  app CPU ms per signal",
            *(f"{lat[k].cpu_ms_per_signal:.2f}" for k in (STOCK, PT, WK)),
            r(lat[WK].cpu_ms_per_signal, lat[PT].cpu_ms_per_signal),
            r(lat[WK].cpu_ms_per_signal, lat[STOCK].cpu_ms_per_signal),
            "",
            "",
        ),
    ]
    head = ("", "stock Faust", "tuned pass-through", "worker", "worker/tuned", "worker/stock", "target (stock)", "")
    widths = [max(len(row[c]) for row in (head, *rows)) for c in range(len(head))]
    lines = [
        "  ".join(
            cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (head, *rows)
    ]
    for baseline, label in ((PT, "tuned"), (STOCK, "stock")):
        ratios = sorted(throughput_ratio(x, baseline) for x in rounds)
        lines.append(f"throughput worker/{label}, every round: " + " ".join(f"{x:.2f}" for x in ratios))
    lines.append("worker throughput, every round (signals/s): " + " ".join(f"{x[WK].per_s:,.0f}" for x in rounds))
    lines.append(f"latency rate: {rate_note}")
    lines.append(f"worker decisions by policy: {dict(policies)}")
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace, base: Settings, workdir: Path, broker_pid: int) -> str:
    markets = [market(name, args.bars) for name in args.symbols]
    apps = {
        STOCK: start_app(
            STOCK, ["bench.passthrough_app", "--stock", "--id", "stock", "--loglevel", args.loglevel], base, workdir
        ),
        PT: start_app(PT, ["bench.passthrough_app", "--id", "bench", "--loglevel", args.loglevel], base, workdir),
        WK: start_app(WK, ["agents.worker", "--id", "bench", "--loglevel", args.loglevel], base, workdir),
    }
    try:
        worker = apps["worker"]
        n_bars = 0
        for m in markets:
            for bar in m.bars:
                worker.producer.send(bar)
                n_bars += 1
        worker.producer.flush()
        warmup = {STOCK: 200, PT: 200, WK: 200 if args.fresh else OPEN_LEN * len(markets)}
        batches = {}
        for name, app in apps.items():
            topic = app.settings.topic("inputs")
            sizes = [
                ("warmup", warmup[name]),
                *((f"thr{k}", args.signals) for k in range(args.rounds)),
                ("lat", int(args.rate * args.seconds)),
            ]
            batches[name] = {tag: encode_signals(app.codec, topic, markets, n, tag) for tag, n in sizes}
        for name, app in apps.items():  # both start at once: joins and imports overlap
            app.publish(batches[name]["warmup"])
        for name, app in apps.items():
            app.wait_for([sid for sid, _, _ in batches[name]["warmup"]], args.start_timeout + warmup[name] / 50)
        wait_bars_consumed(worker, n_bars + warmup[WK], 60)
        print(
            f"warm: {n_bars} bars of {', '.join(m.symbol for m in markets)} in the worker's state; "
            f"warm-up signals answered: {warmup}",
            flush=True,
        )
        time.sleep(1.0)  # let both settle (commits, changelog flushes) before timing

        rounds: list[dict[str, Throughput]] = []
        for k in range(args.rounds):  # alternated: the apps take turns going first
            items = list(apps.items())
            order = items[k % len(items) :] + items[: k % len(items)]
            rounds.append(
                {name: measure_throughput(app, batches[name][f"thr{k}"], 120, broker_pid) for name, app in order}
            )
            print(
                f"throughput round {k + 1}: "
                + ", ".join(f"{name} {t.per_s:,.0f} signals/s" for name, t in rounds[-1].items())
                + f", worker/tuned {throughput_ratio(rounds[-1]):.2f}, worker/stock {throughput_ratio(rounds[-1], STOCK):.2f}",
                flush=True,
            )
            time.sleep(0.5)
        thr = median_round(rounds)
        # the worker and the tuned pass-through set the rate (the stock one is measured at it too, however late)
        sustained = SUSTAINED_SHARE * min(thr[PT].per_s, thr[WK].per_s)
        rate, rate_note = float(args.rate), f"{args.rate:,.0f}/s as asked, for {args.seconds:g} s"
        if sustained < args.rate:
            slower = min((PT, WK), key=lambda k: thr[k].per_s)
            rate = sustained
            rate_note = (
                f"{rate:,.0f}/s for {args.seconds:g} s: {args.rate:,.0f}/s is beyond the {slower} "
                f"({thr[slower].per_s:,.0f}/s max), so {SUSTAINED_SHARE:.0%} of its throughput"
            )
        lat = {}
        for name, app in apps.items():
            batch = batches[name]["lat"][: int(rate * args.seconds)]
            time.sleep(1.0)
            lat[name] = measure_latency(app, batch, rate, 60, broker_pid)
            print(f"latency {name}: p50 {lat[name].p50_ms:.1f} ms, p99 {lat[name].p99_ms:.1f} ms", flush=True)
        return report(thr, lat, rate_note, worker.reader.policies, rounds)
    finally:
        for app in apps.values():
            app.reader.close()
            app.proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=3000, help="signals per throughput round")
    parser.add_argument(
        "--rounds", type=int, default=5, help="throughput rounds per app, alternated (median ratio shown)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="signals/s of the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--bars", type=int, default=300, help="warm-up bars per symbol")
    parser.add_argument("--symbols", nargs="+", default=list(SYMBOLS))
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="warm the worker with 200 signals only, not up to its account cap (see the docstring)",
    )
    parser.add_argument("--loglevel", default="warning", help="log level of both apps (their logs go to files)")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds for both apps to answer")
    args = parser.parse_args()
    if args.rounds < 1 or args.signals < 1:
        parser.error("--rounds and --signals must be at least 1")
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    started = time.monotonic()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp,
            EmbeddedStack(Path(tmp) / "stack", ports=StackPorts.free(), memory=True) as stack,
        ):
            broker = next(p for p in stack.processes if p.name.startswith("tansu"))
            table = run(args, stack.settings, Path(tmp), broker.pid)
    except BenchError as exc:
        print(f"bench_worker: FAILED: {exc}", file=sys.stderr)
        return 1
    print()
    print(table)
    load = os.getloadavg()
    print(
        f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; run took {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
