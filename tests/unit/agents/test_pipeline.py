from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.features import FEATURE_NAMES, FEATURE_SET
from agents.pipeline import event_id_for, feature_vector, on_bar, on_decision, on_signal, on_trade_closed
from agents.sizing import OnnxPolicy, PolicySlot
from agents.state import AccountState, StrategyHistory
from agents.strategy_map import StrategyMap, UnknownStrategy
from schemas.codec import EventCodec, InMemoryRegistry
from tests.unit.agents.market import T0, aapl_bars, signal, state_of, trade
from tests.unit.agents.tiny_onnx import sizing_model

NOW = T0 + timedelta(milliseconds=3)


def _run(sig, state, slot=None, history=None, account=None):
    return on_signal(sig, symbol_state=state, history=history or StrategyHistory.empty(sig.strategy_id),
                     account=account or AccountState(), strategy_map=StrategyMap.from_spec("X7=Breakout"),
                     slot=slot or PolicySlot(), now=NOW)


def test_on_signal_produces_valid_matching_events() -> None:
    bars = aapl_bars()[:260]
    sig = signal(bars[-1].ts_event, strategy_id="X7", price=bars[-1].close, base_qty=40.0, q_score=0.9,
                 atr=bars[-1].close * 0.02)
    features, decided = _run(sig, state_of(bars))
    assert features.signal_id == decided.signal_id == sig.signal_id
    assert features.ts_event == decided.ts_event == sig.ts_event and decided.ts_init == NOW
    assert features.strategy_type == "Breakout" and features.feature_set == FEATURE_SET
    assert tuple(features.features) == FEATURE_NAMES and features.features["fam_Breakout"] == 1.0
    assert decided.policy == "RULES" and decided.multiplier == 1.5
    assert decided.qty == pytest.approx(40.0 * 1.5) and decided.latency_us >= 0
    assert decided.event_id == event_id_for(sig.signal_id, "decision") != features.event_id
    # the events encode under their Avro schemas
    codec = EventCodec(InMemoryRegistry())
    assert codec.decode(codec.encode("rlsizer.decisions", decided)) == decided
    assert codec.decode(codec.encode("rlsizer.features", features)) == features


def test_reprocessing_a_signal_yields_identical_events_but_latency() -> None:
    bars = aapl_bars()[:100]
    sig = signal(bars[-1].ts_event, price=bars[-1].close)
    f1, d1 = _run(sig, state_of(bars))
    f2, d2 = _run(sig, state_of(bars))
    assert f1 == f2
    assert (d1.event_id, d1.multiplier, d1.reason) == (d2.event_id, d2.multiplier, d2.reason)


def test_on_signal_with_a_model_and_without_bars() -> None:
    names = ("sig_q_score", "rsi_14", "bb_pctb_20")
    slot = PolicySlot(OnnxPolicy(sizing_model(3), feature_names=names, version="v9"))
    bars = aapl_bars()[:100]
    _, decided = _run(signal(bars[-1].ts_event, price=bars[-1].close), state_of(bars), slot)
    assert decided.policy == "MODEL" and decided.model_version == "v9"
    _, cold = _run(signal(bars[-1].ts_event), None, slot)
    assert cold.policy == "FALLBACK" and "no bars yet for AAPL" in cold.reason


def test_unknown_strategy_raises() -> None:
    with pytest.raises(UnknownStrategy, match="Q1"):
        _run(signal(strategy_id="Q1"), None)


def test_outcomes_and_decisions_flow_into_the_next_signal() -> None:
    bars = aapl_bars()[:100]
    ts = bars[-1].ts_event
    history, account = StrategyHistory.empty("S1"), AccountState()
    _, d1 = _run(signal(ts - timedelta(hours=2), signal_id="s1", price=bars[-1].close), state_of(bars))
    account = on_decision(account, d1)
    history, account = on_trade_closed(history, account, trade("s1", ts - timedelta(hours=1), 2.0))
    _, d2 = _run(signal(ts - timedelta(minutes=30), signal_id="s2", price=bars[-1].close), state_of(bars))
    account = on_decision(account, d2)
    f3, _ = _run(signal(ts, signal_id="s3", price=bars[-1].close), state_of(bars), history=history, account=account)
    feats = f3.features
    assert feats["strat_n_trades"] == 1.0 and feats["strat_mean_r"] == 2.0
    assert feats["acct_session_pnl_r"] == pytest.approx(2.0 * d1.multiplier)
    assert feats["acct_open_risk_r"] == pytest.approx(d2.multiplier)


def test_feature_vector_order_and_dtype() -> None:
    vec = feature_vector({"x": 1.5, "y": -2.0}, ["y", "x"])
    assert vec.dtype == np.float32 and vec.tolist() == [-2.0, 1.5]


def test_on_bar_starts_state_from_none() -> None:
    state = on_bar(None, aapl_bars()[0])
    assert state.symbol == "AAPL" and state.count == 1


@given(st.text(min_size=1, max_size=80), st.sampled_from(["features", "decision", "outcome"]))
def test_event_ids_are_the_rfc_4122_uuid5_of_kind_and_signal(signal_id, kind):
    want = str(uuid.uuid5(uuid.UUID("6f1c7b1e-6a53-4a56-9d1c-2b8f0d1e5a10"), f"{kind}:{signal_id}"))
    assert event_id_for(signal_id, kind) == want
