"""Backtest signals/s against the live worker's signals/s on the same events, in one run.

Starts an embedded stack on memory storage (or uses ``--external`` RLSIZER_* settings), a
worker subprocess (``python -m agents.worker``, rules policy) on a fresh topic prefix, then
publishes ``--signals`` signals of ``--symbols`` symbols with ``--bars-per-signal`` bars
each, and times first publish -> last decision seen. Then refreshes a warehouse from those
topics and times the backtest of the same signals (load from DuckDB + replay through
``agents.book``, rules policy). Prints both rates and their ratio.

    .venv/bin/python bench/bench_backtest.py [--signals 2000] [--memory-only-backtest]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from confluent_kafka.admin import AdminClient

from agents.strategy_map import StrategyMap
from config.settings import ENV_PREFIX, Settings
from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from schemas.codec import EventCodec
from schemas.events import BarClosed, SignalRaised, SizeDecided
from streams.codec_factory import make_codec
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.topics import ensure_topics, new_topics
from trainer.backtest.events import load_history
from trainer.backtest.run import rules_policy, run_policy
from trainer.warehouse.replay import replay

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 2, tzinfo=UTC)


def events(n_signals: int, n_symbols: int, bars_per_signal: int) -> list[BarClosed | SignalRaised]:
    out: list[BarClosed | SignalRaised] = []
    price = {f"B{k}": 100.0 + k for k in range(n_symbols)}
    for i in range(n_signals):
        sym = f"B{i % n_symbols}"
        step = i // n_symbols
        for b in range(bars_per_signal):
            ts = T0 + timedelta(minutes=step * bars_per_signal + b + 1)
            p = price[sym] = price[sym] * (1.0 + 0.001 * (((i * 7 + b * 13) % 11) - 5))
            out.append(
                BarClosed(
                    ts_event=ts,
                    symbol=sym,
                    interval="1m",
                    open=p,
                    high=p * 1.002,
                    low=p * 0.998,
                    close=p,
                    volume=1000.0,
                )
            )
        out.append(
            SignalRaised(
                ts_event=ts,
                signal_id=f"bench-{i}",
                strategy_id=f"S{i % 14 + 1}",
                symbol=sym,
                side="BUY",
                price=p,
                atr=p * 0.004,
                score=0.5,
                q_score=0.5,
                base_qty=10.0,
                stop_price=p * 0.99,
            )
        )
    return out


def env_of(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({ENV_PREFIX + f.name.upper(): str(getattr(s, f.name)) for f in fields(s)})
    return env


def wait_decisions(s: Settings, codec: EventCodec, want: set[str], timeout: float) -> float:
    consumer = make_consumer(
        s, f"bench-{uuid.uuid4().hex[:6]}", **{"fetch.wait.max.ms": 10, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([s.topic("decisions")])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not want <= seen:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(seen & want)}/{len(want)} decisions after {timeout}s")
            for msg in consumer.consume(2000, 0.05):
                if not msg.error():
                    ev = codec.decode(msg.value())
                    if isinstance(ev, SizeDecided):
                        seen.add(ev.signal_id)
        return time.monotonic()
    finally:
        consumer.close()


def bench(base: Settings, args: argparse.Namespace, work: Path) -> None:
    s = replace(
        base,
        topic_prefix=f"bb{uuid.uuid4().hex[:8]}",
        topic_partitions=args.partitions,
        worker_web_port=0,
        data_dir=work,
        decision_timeout_ms=5000,
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    codec = make_codec(s)
    stream = events(args.signals, args.symbols, args.bars_per_signal)
    signals = [e for e in stream if isinstance(e, SignalRaised)]
    producer = EventProducer(make_producer(s), codec, s)
    for e in stream[:1]:  # registers the schemas before timing
        codec.encode(s.topic("inputs"), e)
    codec.encode(s.topic("inputs"), signals[0])
    with open(work / "worker.log", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "agents.worker", "--id", "bench", "--loglevel", "warning"],
            cwd=ROOT,
            env=env_of(s),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        warm = SignalRaised(
            ts_event=T0,
            signal_id="warmup",
            strategy_id="S1",
            symbol="WARM",
            side="BUY",
            price=1.0,
            atr=0.1,
            base_qty=1.0,
        )
        producer.send(warm)
        producer.flush()
        wait_decisions(s, codec, {"warmup"}, 60)
        started = time.monotonic()
        for e in stream:
            producer.send(e)
        producer.flush()
        done = wait_decisions(s, codec, {x.signal_id for x in signals}, 300)
    finally:
        proc.terminate()
        proc.wait(15)
    live_rate = len(signals) / (done - started)
    wh = work / "warehouse.duckdb"
    replay(s, codec, warehouse_path=wh, progress=False)
    con = duckdb.connect(str(wh), read_only=True)
    t0 = time.perf_counter()
    history = load_history(con, T0 + timedelta(seconds=1), T0 + timedelta(days=365))
    t1 = time.perf_counter()
    result = run_policy(history, rules_policy(), StrategyMap.from_spec(""))
    t2 = time.perf_counter()
    con.close()
    n = len(result.signal_ids)
    print(
        f"signals: {len(signals)} ({args.symbols} symbols, {args.bars_per_signal} bars each), worker partitions {args.partitions}"
    )
    print(f"live worker:  {live_rate:10,.0f} signals/s  (publish -> last decision {done - started:.2f} s)")
    print(
        f"backtest:     {n / (t2 - t0):10,.0f} signals/s  (load {t1 - t0:.2f} s + replay {t2 - t1:.2f} s; replay alone {n / (t2 - t1):,.0f}/s)"
    )
    print(f"ratio backtest / live: {n / (t2 - t0) / live_rate:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=2000)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--bars-per-signal", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--external", action="store_true", help="use the cluster from RLSIZER_* settings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        work = Path(tmp)
        if args.external:
            bench(Settings.from_env(), args, work)
            return
        with EmbeddedStack(work / "stack", ports=StackPorts.free(), memory=True) as stack:
            bench(stack.settings, args, work)


if __name__ == "__main__":
    main()
