"""Fills to outcomes in the glue, driven without a broker (tables are plain dicts here)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents.glue.fills import FillHandlers, open_ids, signal_record, trade_closed
from agents.glue.handlers import Handlers, Source
from agents.glue.ports import default_pipeline
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import EventRejected, OrderFilled, TradeClosed
from streams.settings import Settings
from tests.unit.schemas.factories import T0, make_bar, make_signal


class World:
    """The worker's two tables as dicts, and the records it sent."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.codec = EventCodec(InMemoryRegistry())
        pipeline = default_pipeline()
        base = Handlers(self.settings, self.codec, pipeline, pipeline.strategy_map_from_spec(""), pipeline.new_slot())
        self.base = base
        self.fills = FillHandlers(base)
        self.state: bytes | None = None  # the symbol's bars (symbol-state table)
        self.trades: dict[bytes, bytes] = {}
        self.open: dict[bytes, bytes] = {}
        self.sent: list = []

    def raise_signal(self, **kw):
        signal = make_signal(stop_price=99.0, **kw)
        self.trades[signal.signal_id.encode()] = signal_record(self.codec.encode("rlsizer.signals", signal))
        return signal

    def _apply(self, effects) -> None:
        self.closed = getattr(self, "closed", []) + list(effects.closed)
        for key, value in effects.trades:
            self.trades[key] = value
        if effects.open_index is not None:
            self.open[b"AAPL"] = effects.open_index
        self.sent += [self.codec.decode(o.value) for o in effects.outgoing]

    def fill(self, fill: OrderFilled) -> None:
        src = Source("rlsizer.fills", 0, len(self.sent), b"AAPL", self.codec.encode("rlsizer.fills", fill))
        self._apply(self.fills.on_fill(src, fill, record=self.trades.get(fill.signal_id.encode()), open_index=self.open.get(b"AAPL"),
                                       bars=self.state))

    def bar(self, bar) -> None:
        """The bars agent: the symbol's state, then the open trades' marks."""
        src = Source("rlsizer.bars", 0, 0, b"AAPL", self.codec.encode("rlsizer.bars", bar))
        self.state = self.base.on_bar(src, bar, self.state).symbol_state or self.state
        ids = open_ids(self.open.get(b"AAPL"))
        self._apply(self.fills.on_bar(bar, {i: self.trades.get(i.encode()) for i in ids}))


def entry(**kw) -> OrderFilled:
    values = dict(ts_event=T0 + timedelta(days=1), signal_id="sig-1", order_id="o-1", symbol="AAPL", side="BUY",
                  qty=10.0, price=100.0, fee=1.0, leg="ENTRY", event_id="fill-entry")
    values.update(kw)
    return OrderFilled(**values)


def exit_(**kw) -> OrderFilled:
    return entry(**{"ts_event": T0 + timedelta(days=3), "order_id": "o-2", "side": "SELL", "price": 103.0,
                    "leg": "EXIT", "exit_reason": "target", "event_id": "fill-exit", **kw})


def test_entry_then_bars_then_exit_gives_one_trade_with_excursions():
    w = World()
    w.raise_signal()
    assert not trade_closed(w.trades[b"sig-1"])
    w.fill(entry())
    assert not trade_closed(w.trades[b"sig-1"])
    assert open_ids(w.open[b"AAPL"]) == ["sig-1"]
    w.bar(make_bar(ts_event=T0 + timedelta(days=2), open=100.0, high=104.0, low=98.0, close=103.0))
    w.fill(exit_())
    [trade] = w.sent
    assert isinstance(trade, TradeClosed)
    assert trade.r_multiple == pytest.approx(3.0)  # (103 - 100) / (100 - 99)
    assert trade.pnl == pytest.approx(30.0 - 2.0)
    assert trade.mae_r == pytest.approx(-2.0) and trade.mfe_r == pytest.approx(4.0)
    assert open_ids(w.open[b"AAPL"]) == []
    assert w.closed == [trade], "the worker folds the trade into its own state at once"
    assert trade_closed(w.trades[b"sig-1"])  # the worker may forget it with its decision (agents.retention)
    assert not trade_closed(b"not json") and not trade_closed(b"[1]") and not trade_closed(b"{}")


def test_redelivered_exit_resends_the_same_outcome_and_entry_is_idempotent():
    w = World()
    w.raise_signal()
    w.fill(entry())
    w.fill(entry())  # same event_id: no-op
    w.fill(exit_())
    w.fill(exit_())
    assert [type(e) for e in w.sent] == [TradeClosed, TradeClosed]
    assert w.sent[0] == w.sent[1]


@pytest.mark.parametrize(
    ("fills", "kind"),
    [
        ([entry(signal_id="never-raised")], "orphan_fill"),
        ([exit_()], "exit_before_entry"),
        ([entry(), entry(event_id="another-entry", order_id="o-9")], "duplicate"),
        ([entry(), exit_(), exit_(event_id="late-exit", order_id="o-3")], "duplicate"),
        ([entry(side="SELL")], "mismatch"),
        ([entry(), exit_(ts_event=T0)], "exit_before_entry"),
    ],
)
def test_bad_fills_are_dead_lettered_with_a_reason(fills, kind):
    w = World()
    w.raise_signal()
    for fill in fills:
        w.fill(fill)
    letters = [e for e in w.sent if isinstance(e, EventRejected)]
    assert [letter.error_type for letter in letters] == [kind]
    assert letters[0].raw_value and letters[0].source_topic == "rlsizer.fills"


def _closed_after(order: list[str]) -> TradeClosed:
    """The trade of ``entry`` -> two bars -> ``exit_``, with the fills and bars read in ``order``."""
    w = World()
    w.raise_signal()
    steps = {
        "before": lambda: w.bar(make_bar(ts_event=T0 + timedelta(hours=12), open=100.0, high=100.5, low=99.5, close=100.0)),
        "entry": lambda: w.fill(entry()),
        "dip": lambda: w.bar(make_bar(ts_event=T0 + timedelta(days=2), open=100.0, high=101.0, low=97.5, close=98.0)),
        "peak": lambda: w.bar(make_bar(ts_event=T0 + timedelta(days=3), open=98.0, high=104.5, low=97.9, close=103.0)),
        "late": lambda: w.bar(make_bar(ts_event=T0 + timedelta(days=4), open=103.0, high=120.0, low=80.0, close=103.0)),
        "exit": lambda: w.fill(exit_()),
    }
    for step in order:
        steps[step]()
    [trade] = [e for e in w.sent if isinstance(e, TradeClosed)]
    return trade


@pytest.mark.parametrize("order", [
    ["before", "entry", "dip", "peak", "exit"],  # the order they happened in
    ["before", "dip", "entry", "peak", "exit"],  # a bar read before the entry fill it follows
    ["before", "dip", "peak", "entry", "exit"],
    ["before", "dip", "entry", "peak", "late", "exit"],  # a bar after the exit read before it
    ["before", "entry", "dip", "peak", "late", "exit"],
])
def test_excursions_are_those_of_the_bars_between_entry_and_exit_whatever_order_they_were_read_in(order):
    """Bars and fills come on two topics: the worker may read a bar before the entry fill it follows,
    or a bar after the exit before the exit. MAE/MFE are those of the bars closing in (entry, exit]."""
    trade = _closed_after(order)
    assert trade.mae_r == pytest.approx(-2.5) and trade.mfe_r == pytest.approx(4.5)  # low 97.5, high 104.5; risk 1
    assert trade.r_multiple == pytest.approx(3.0)
