from __future__ import annotations

from datetime import timedelta

import pytest

from agents.state import (
    HISTORY_LEN,
    AccountState,
    StateCorrupt,
    StrategyHistory,
    account_features,
    apply_decision,
    apply_outcome,
    apply_trade,
    history_features,
)
from agents.timestamps import to_micros
from tests.unit.agents.market import T0, decision, trade

FAR = 2**62


def _history(rs: list[float]) -> StrategyHistory:
    h = StrategyHistory.empty("S1")
    for i, r in enumerate(rs):
        h = apply_outcome(h, trade(f"t{i}", T0 + timedelta(minutes=i), r))
    return h


def test_history_features_from_recent_outcomes() -> None:
    f = history_features(_history([1.0, -1.0, 2.0, 0.5]), FAR)
    assert f["strat_n_trades"] == 4.0
    assert f["strat_win_rate"] == 0.75
    assert f["strat_mean_r"] == pytest.approx(0.625)
    assert f["strat_streak"] == 2.0 and f["strat_last_r"] == 0.5
    assert history_features(_history([1.0, -1.0, -0.5, -2.0]), FAR)["strat_streak"] == -3.0


def test_history_is_bounded_and_deduplicated() -> None:
    h = _history([1.0] * (HISTORY_LEN + 10))
    assert len(h.outcomes) == HISTORY_LEN
    again = apply_outcome(h, trade("t59", T0 + timedelta(minutes=59), 1.0))
    assert again is h
    with pytest.raises(ValueError, match="S2"):
        apply_outcome(h, trade("x", T0, 1.0, strategy_id="S2"))


def test_history_features_are_point_in_time() -> None:
    h = _history([1.0, 1.0, -1.0])
    at = to_micros(T0 + timedelta(minutes=1))  # the third trade closed later
    f = history_features(h, at)
    assert f["strat_n_trades"] == 2.0 and f["strat_win_rate"] == 1.0


def test_account_open_risk_and_session_pnl_in_r_times_multiplier() -> None:
    acct = AccountState()
    acct = apply_decision(acct, decision("a", T0, 2.0))
    acct = apply_decision(acct, decision("b", T0 + timedelta(minutes=1), 0.5))
    acct = apply_decision(acct, decision("b", T0 + timedelta(minutes=1), 0.5))  # duplicate delivery
    f = account_features(acct, to_micros(T0 + timedelta(minutes=2)))
    assert f["acct_open_risk_r"] == 2.5 and f["acct_open_trades"] == 2.0
    acct = apply_trade(acct, trade("a", T0 + timedelta(minutes=5), 1.5))  # +3.0R sized x2
    acct = apply_trade(acct, trade("b", T0 + timedelta(minutes=6), -2.0))  # -1.0R sized x0.5
    acct = apply_trade(acct, trade("b", T0 + timedelta(minutes=6), -2.0))  # duplicate
    f = account_features(acct, to_micros(T0 + timedelta(minutes=10)))
    assert f["acct_session_pnl_r"] == pytest.approx(2.0)
    assert f["acct_drawdown_r"] == pytest.approx(1.0)
    assert f["acct_open_risk_r"] == 0.0 and f["acct_session_trades"] == 2.0
    # point in time: between the two closes
    mid = account_features(acct, to_micros(T0 + timedelta(minutes=5, seconds=30)))
    assert mid["acct_session_pnl_r"] == pytest.approx(3.0) and mid["acct_drawdown_r"] == 0.0
    # the next UTC day is a new session
    tomorrow = account_features(acct, to_micros(T0 + timedelta(days=1)))
    assert tomorrow["acct_session_pnl_r"] == 0.0 and tomorrow["acct_session_trades"] == 0.0


def test_trade_without_a_seen_decision_counts_with_multiplier_one() -> None:
    acct = apply_trade(AccountState(), trade("z", T0, -1.0))
    assert account_features(acct, to_micros(T0))["acct_session_pnl_r"] == -1.0


def test_stale_open_decisions_expire() -> None:
    acct = apply_decision(AccountState(), decision("old", T0, 1.0))
    acct = apply_decision(acct, decision("new", T0 + timedelta(days=8), 1.0))
    assert [t.signal_id for t in acct.open] == ["new"]


def test_bytes_roundtrip() -> None:
    h = _history([1.0, -0.5])
    assert StrategyHistory.from_bytes(h.to_bytes()) == h
    acct = apply_trade(apply_decision(AccountState(), decision("a", T0, 1.5)), trade("b", T0, 1.0))
    acct = apply_decision(acct, decision("c", T0, 0.25))
    assert AccountState.from_bytes(acct.to_bytes()) == acct
    for raw in (b"", b"[]", b'{"v":99}', b'{"v":1}'):
        with pytest.raises(StateCorrupt):
            AccountState.from_bytes(raw)
        with pytest.raises(StateCorrupt):
            StrategyHistory.from_bytes(raw)
