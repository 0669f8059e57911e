"""agents.book: a symbol's book advanced input by input -- the one model of bars, account and history."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.book import SymbolBook, decided, event_id_for, with_bar, with_decision, with_fill, with_outcome
from agents.features import FEATURE_NAMES, FEATURE_SET, BarRejected
from agents.sizing import PolicySlot, feature_vector, load_policy
from agents.strategy_map import StrategyMap, UnknownStrategy
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import OrderFilled
from tests.unit.agents.market import T0, aapl_bars, signal, trade
from tests.unit.agents.tiny_onnx import sizing_model

NOW = T0 + timedelta(milliseconds=3)


def book_of(bars) -> SymbolBook:
    book = SymbolBook.empty("AAPL")
    for bar in bars:
        book = with_bar(book, bar)
    return book


def _run(sig, book, slot=None):
    _, features, decision = decided(
        book or SymbolBook.empty(sig.symbol),
        sig,
        strategy_map=StrategyMap.from_spec("X7=Breakout"),
        slot=slot or PolicySlot(),
        now=NOW,
    )
    return features, decision


def test_on_signal_produces_valid_matching_events() -> None:
    bars = aapl_bars()[:260]
    sig = signal(
        bars[-1].ts_event, strategy_id="X7", price=bars[-1].close, base_qty=40.0, q_score=0.9, atr=bars[-1].close * 0.02
    )
    features, decided = _run(sig, book_of(bars))
    assert features.signal_id == decided.signal_id == sig.signal_id
    assert features.ts_event == decided.ts_event == sig.ts_event and decided.ts_init == NOW
    assert features.strategy_type == "Breakout" and features.feature_set == FEATURE_SET
    assert tuple(features.features) == FEATURE_NAMES and features.features["fam_Breakout"] == 1.0
    assert decided.policy == "RULES" and decided.multiplier == 1.5
    assert decided.qty == pytest.approx(40.0 * 1.5) and decided.latency_us == 0  # the glue times it
    assert decided.event_id == event_id_for(sig.signal_id, "decision") != features.event_id
    # the events encode under their Avro schemas
    codec = EventCodec(InMemoryRegistry())
    assert codec.decode(codec.encode("rlsizer.decisions", decided)) == decided
    assert codec.decode(codec.encode("rlsizer.features", features)) == features


def test_reprocessing_a_signal_yields_identical_events() -> None:
    bars = aapl_bars()[:100]
    sig = signal(bars[-1].ts_event, price=bars[-1].close)
    assert _run(sig, book_of(bars)) == _run(sig, book_of(bars))


def test_on_signal_with_a_model_and_without_bars() -> None:
    names = ("sig_q_score", "rsi_14", "bb_pctb_20")
    slot = PolicySlot(load_policy(sizing_model(3), feature_names=names, version="v9"))
    bars = aapl_bars()[:100]
    _, decided = _run(signal(bars[-1].ts_event, price=bars[-1].close), book_of(bars), slot)
    assert decided.policy == "MODEL" and decided.model_version == "v9"
    _, cold = _run(signal(bars[-1].ts_event), None, slot)
    assert cold.policy == "FALLBACK" and "no bars yet for AAPL" in cold.reason


def test_unknown_strategy_raises() -> None:
    with pytest.raises(UnknownStrategy, match="Q1"):
        _run(signal(strategy_id="Q1"), None)


def test_fills_and_decisions_flow_into_the_next_signal() -> None:
    bars = aapl_bars()[:100]
    ts, close = bars[-1].ts_event, bars[-1].close
    book = book_of(bars)
    s1 = signal(ts - timedelta(hours=2), signal_id="s1", price=close, stop_price=close - 3.0, target_price=close + 6.0)
    book, _, d1 = decided(book, s1, strategy_map=StrategyMap.from_spec(""), slot=PolicySlot(), now=NOW)
    entry = OrderFilled(
        ts_event=ts - timedelta(hours=2),
        signal_id="s1",
        order_id="e",
        symbol="AAPL",
        side="BUY",
        qty=100.0,
        price=close,
        leg="ENTRY",
    )
    book, none = with_fill(book, entry, signal=s1, closed=False, now=NOW)
    assert none is None and "s1" in book.trades
    exit_ = OrderFilled(
        ts_event=ts - timedelta(hours=1),
        signal_id="s1",
        order_id="x",
        symbol="AAPL",
        side="SELL",
        qty=100.0,
        price=close + 6.0,
        leg="EXIT",
    )
    book, closed = with_fill(book, exit_, signal=s1, closed=False, now=NOW)
    assert closed is not None and closed.r_multiple == pytest.approx(2.0) and not book.trades
    book, _, d2 = decided(
        book,
        signal(ts - timedelta(minutes=30), signal_id="s2", price=close),
        strategy_map=StrategyMap.from_spec(""),
        slot=PolicySlot(),
        now=NOW,
    )
    f3, _ = _run(signal(ts, signal_id="s3", price=close), book)
    feats = f3.features
    assert feats["strat_n_trades"] == 1.0 and feats["strat_mean_r"] == pytest.approx(2.0)
    assert feats["acct_session_pnl_r"] == pytest.approx(2.0 * d1.multiplier)
    assert feats["acct_open_risk_r"] == pytest.approx(d2.multiplier)
    assert with_outcome(book, closed) == book  # idempotent on signal_id
    assert with_decision(book, d2) == book


def test_a_book_round_trips_through_bytes() -> None:
    bars = aapl_bars()[:60]
    book = book_of(bars)
    sig = signal(bars[-1].ts_event, price=bars[-1].close)
    book, _, _d = decided(book, sig, strategy_map=StrategyMap.from_spec(""), slot=PolicySlot(), now=NOW)
    book = with_outcome(book, trade("old", bars[-1].ts_event, 1.5))
    entry = OrderFilled(
        ts_event=bars[-1].ts_event,
        signal_id=sig.signal_id,
        order_id="e",
        symbol="AAPL",
        side="BUY",
        qty=100.0,
        price=bars[-1].close,
        leg="ENTRY",
    )
    book, _ = with_fill(book, entry, signal=sig, closed=False, now=NOW)
    again = SymbolBook.from_bytes(book.to_bytes())
    assert again == book and again.applied(-1, -1)
    assert again.trades[sig.signal_id] == book.trades[sig.signal_id]


def test_a_bar_out_of_order_is_refused_and_the_book_is_unchanged() -> None:
    bars = aapl_bars()[:3]
    book = book_of(bars)
    with pytest.raises(BarRejected):
        with_bar(book, bars[0])


def test_feature_vector_order_and_dtype() -> None:
    vec = feature_vector({"x": 1.5, "y": -2.0}, ["y", "x"])
    assert vec.dtype == np.float32 and vec.tolist() == [-2.0, 1.5]


def test_the_first_bar_starts_the_books_bars() -> None:
    book = with_bar(SymbolBook.empty("AAPL"), aapl_bars()[0])
    assert book.bars is not None and book.bars.symbol == "AAPL" and book.bars.count == 1


@given(st.text(min_size=1, max_size=80), st.sampled_from(["features", "decision", "outcome"]))
def test_event_ids_are_the_rfc_4122_uuid5_of_kind_and_signal(signal_id, kind):
    want = str(uuid.uuid5(uuid.UUID("6f1c7b1e-6a53-4a56-9d1c-2b8f0d1e5a10"), f"{kind}:{signal_id}"))
    assert event_id_for(signal_id, kind) == want


def test_the_fast_copy_knows_every_field_of_a_book() -> None:
    from dataclasses import fields

    from agents import book as module

    assert tuple(f.name for f in fields(SymbolBook)) == module._FIELDS
