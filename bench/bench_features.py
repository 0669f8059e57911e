"""Per-bar and per-signal cost of a symbol's book (``agents.book``: with_bar, decided) on real AAPL bars.

Prints microseconds; asserts nothing. Run: .venv/bin/python bench/bench_features.py
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from agents.book import SymbolBook, decided, with_bar
from agents.features import FEATURE_NAMES
from agents.sizing import PolicySlot, load_policy
from agents.strategy_map import StrategyMap
from schemas.events import BarClosed, SignalRaised


def _bars() -> list[BarClosed]:
    from bokeh_sampledata.stocks import AAPL

    t0 = datetime.now(UTC)
    return [
        BarClosed(
            ts_event=datetime.fromisoformat(d).replace(tzinfo=UTC) + timedelta(hours=21),
            ts_init=t0,
            symbol="AAPL",
            interval="1d",
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=float(v),
        )
        for d, o, h, lo, c, v in zip(
            AAPL["date"], AAPL["open"], AAPL["high"], AAPL["low"], AAPL["close"], AAPL["volume"], strict=True
        )
    ]


def _model(n: int) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["features"], ["m"], axes=[1], keepdims=0),
            helper.make_node("Sigmoid", ["m"], ["s"]),
            helper.make_node("Mul", ["s", "k"], ["x"]),
            helper.make_node("Add", ["x", "b"], ["multiplier"]),
        ],
        "bench",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("multiplier", TensorProto.FLOAT, ["batch"])],
        initializer=[
            helper.make_tensor("k", TensorProto.FLOAT, [], [1.75]),
            helper.make_tensor("b", TensorProto.FLOAT, [], [0.25]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def main() -> None:
    bars = _bars()
    smap = StrategyMap.from_spec("")
    slots = {
        "rules": PolicySlot(),
        "model": PolicySlot(load_policy(_model(len(FEATURE_NAMES)), feature_names=FEATURE_NAMES, version="b")),
    }
    book = SymbolBook.empty("AAPL")
    books = {name: book for name in slots}  # each policy's own account, as in a replay
    bar_ns: list[int] = []
    sig_ns: dict[str, list[int]] = {k: [] for k in slots}
    for i, bar in enumerate(bars):
        t = time.perf_counter_ns()
        book = with_bar(book, bar)
        bar_ns.append(time.perf_counter_ns() - t)
        books = {name: with_bar(b, bar) for name, b in books.items()}
        if i < 250 or i % 5:
            continue
        sig = SignalRaised(
            ts_event=bar.ts_event,
            signal_id=f"s{i}",
            strategy_id="S1",
            symbol="AAPL",
            side="BUY",
            price=bar.close,
            atr=bar.close * 0.02,
            base_qty=100.0,
            q_score=0.7,
        )
        for name, slot in slots.items():
            t = time.perf_counter_ns()
            books[name], _, _ = decided(books[name], sig, strategy_map=smap, slot=slot, now=bar.ts_event)
            sig_ns[name].append(time.perf_counter_ns() - t)

    def line(label: str, ns: list[int]) -> str:
        us = sorted(x / 1000 for x in ns)
        return (
            f"{label:<22} n={len(us):>5}  median {statistics.median(us):8.1f} us  "
            f"p99 {us[int(0.99 * (len(us) - 1))]:8.1f} us"
        )

    print(line("with_bar", bar_ns))
    for name, ns in sig_ns.items():
        print(line(f"decided ({name})", ns))
    print(f"features per signal: {len(FEATURE_NAMES)}")


if __name__ == "__main__":
    main()
