"""replay-to-topics on the real broker: a window of history re-published into a prefixed set of topics,
read back from Kafka (keys, ts_event, event ids, order), and the backtest CLI over Kafka-fed data."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import KafkaError

from agents.sizing import PolicySlot
from config.settings import Settings
from rlsizer.cli import build_parser
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, run
from schemas.codec import EventCodec
from schemas.events import BarClosed, OrderFilled, SignalRaised
from streams.codec_factory import make_codec
from streams.consumer import make_consumer
from tests.unit.trainer.backtest_live import PureWorker
from trainer.backtest.replay_to_topics import replay_to_topics
from trainer.warehouse.replay import replay

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[PureWorker, Path]:
    worker = PureWorker(slot=PolicySlot())
    run(load_dataset("MSFT").iloc[:320], RunConfig(symbol="MSFT", interval="1d", run_id="rt"), worker, progress=False)
    return worker, worker.write_warehouse(tmp_path_factory.mktemp("rt") / "warehouse.duckdb")


def read_all(s: Settings, codec: EventCodec, short: str, kind: type | None = None) -> list[tuple[bytes, object]]:
    consumer = make_consumer(
        s, f"rb-{uuid.uuid4().hex[:6]}", **{"enable.partition.eof": True, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([s.topic(short)])
    out, eof = [], 0
    try:
        for _ in range(300):
            for msg in consumer.consume(1000, 0.1):
                if msg.error():
                    eof += msg.error().code() == KafkaError._PARTITION_EOF
                    continue
                event = codec.decode(msg.value())
                if kind is None or isinstance(event, kind):
                    out.append((msg.key(), event))
            if eof >= s.topic_partitions:
                break
    finally:
        consumer.close()
    return out


def test_window_is_republished_with_keys_timestamps_and_ids(settings: Settings, recorded, codec: EventCodec) -> None:
    worker, path = recorded
    bars = [e for e, *_ in worker.recorded if isinstance(e, BarClosed)]
    start, end = bars[260].ts_event, bars[300].ts_event
    target = replace(settings, topic_prefix=f"rt{uuid.uuid4().hex[:8]}", topic_partitions=2)
    con = duckdb.connect(str(path), read_only=True)
    stats = replay_to_topics(con, target, start, end, codec=codec, warmup_bars=30)
    con.close()
    in_window = lambda t: [e for e, *_ in worker.recorded if isinstance(e, t) and start <= e.ts_event < end]  # noqa: E731
    got_bars = read_all(target, codec, "inputs", BarClosed)
    assert [b.event_id for _, b in got_bars] == [b.event_id for b in bars[230:300]]  # 30 warm-up + the window, in order
    assert all(k == b"MSFT" for k, _ in got_bars) and stats.warmup_bars == 30
    got_signals = {e.signal_id: (k, e) for k, e in read_all(target, codec, "inputs", SignalRaised)}
    want = {s.signal_id: s for s in in_window(SignalRaised)}
    assert want and got_signals.keys() == want.keys()
    assert all(k == b"MSFT" and e == want[sid] for sid, (k, e) in got_signals.items())  # same event, ids and ts kept
    fills = read_all(target, codec, "inputs", OrderFilled)
    assert sorted(f.event_id for _, f in fills) == sorted(f.event_id for f in in_window(OrderFilled))
    assert read_all(target, codec, "outcomes") == [] and read_all(target, codec, "decisions") == []
    assert stats.published[f"{target.topic('inputs')} SignalRaised"] == len(want)
    # log order: each fill after the signal it fills, each signal after the bar it was raised at
    order = [e.event_id for _, e in read_all(target, codec, "inputs")]
    source = [e.event_id for e, *_ in worker.recorded if e.event_id in set(order)]
    assert order == source


def test_backtest_command_reads_kafka_and_writes_a_report(settings: Settings, recorded, tmp_path: Path, capsys) -> None:
    """Publish the recorded history (and the live decisions, features and outcomes) to fresh topics; the CLI
    refreshes, reports, and checks parity with the live decisions."""
    worker, path = recorded
    s = replace(settings, topic_prefix=f"bc{uuid.uuid4().hex[:8]}", topic_partitions=1, data_dir=tmp_path)
    codec = make_codec(s)
    bars = [e for e, *_ in worker.recorded if isinstance(e, BarClosed)]
    con = duckdb.connect(str(path), read_only=True)
    replay_to_topics(con, s, bars[0].ts_event, bars[-1].ts_event + timedelta(days=1), codec=codec, warmup_bars=0)
    con.close()
    from streams.producer import EventProducer, make_producer

    producer = EventProducer(make_producer(s), codec, s)
    for e, *_ in worker.recorded:
        if type(e).__name__ in ("SizeDecided", "FeaturesComputed", "TradeClosed"):
            producer.send(e)
    producer.flush()
    start = bars[150].ts_event
    report = tmp_path / "bt.html"
    args = build_parser().parse_args(
        [
            "backtest",
            "--from",
            start.isoformat(),
            "--to",
            (bars[-1].ts_event + timedelta(days=1)).isoformat(),
            "--policy",
            "fixed,rules",
            "--report",
            str(report),
            "--bootstrap",
            "50",
            "--check-parity",
        ]
    )
    assert args.func(args, s) == 0
    out = capsys.readouterr().out
    in_window = {e.signal_id for e, *_ in worker.recorded if isinstance(e, SignalRaised) and e.ts_event >= start}
    scored = sum(1 for e, *_ in worker.recorded if type(e).__name__ == "TradeClosed" and e.signal_id in in_window)
    assert f"parity: {len(in_window)} decisions compared, max |diff| 0, 0 multipliers and 0 policies differ" in out, out
    assert "0 feature(s) differ" in out
    assert scored > 20
    assert re.search(rf"^fixed +all +{scored} ", out, re.M) and re.search(rf"^rules +all +{scored} ", out, re.M), out
    assert report.read_text().count("<img") == 3
    # the warehouse the CLI refreshed holds everything published; a second refresh adds nothing
    assert replay(s, codec, warehouse_path=tmp_path / "warehouse.duckdb", progress=False).new_rows == 0
    bad = build_parser().parse_args(["backtest", "--from", "2001-01-01", "--to", "2001-02-01", "--no-refresh"])
    assert bad.func(bad, s) == 1 and "no champion for model" in capsys.readouterr().err  # errors go to stderr
    bad = build_parser().parse_args(
        ["backtest", "--from", "2030-01-01", "--to", "2030-02-01", "--no-refresh", "--policy", "fixed"]
    )
    assert bad.func(bad, s) == 1 and "no signals" in capsys.readouterr().err
