"""agents.account against the per-trade reference rules it replaced (same numbers, any event order).

The reference below is the original list-of-trades implementation: filter by
horizon, append, stable sort, cap; features by scanning every trade. The
columnar ``agents.account`` must give exactly the same states (as trade lists)
and the same features (bit for bit) for any sequence of decisions, closed
trades and feature reads, including duplicates, equal timestamps, expiry and caps,
and when an older state is used again after newer ones were derived from it
(derived states take over their parent's id index; the parent must rebuild its own).
"""

from __future__ import annotations

import bisect
import math
from datetime import timedelta
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

import agents.account as account
import agents.rows as rows
from agents.account import AccountState, ClosedTrade, OpenTrade
from agents.timestamps import DAY_US, to_micros
from tests.unit.agents.market import T0, decision, trade

OPEN_CAP, CLOSED_CAP = 6, 4  # small caps so short sequences reach them


def ref_decision(o: list, c: list, d) -> tuple[list, list]:
    sid = d.signal_id
    if sid in [t.signal_id for t in o] or sid in [t.signal_id for t in c]:
        return o, c
    ts = to_micros(d.ts_event)
    kept = [t for t in o if t.ts_us >= ts - account.OPEN_TTL_US]
    kept.append(OpenTrade(sid, ts, float(d.multiplier)))
    kept.sort(key=lambda t: t.ts_us)
    return kept[-OPEN_CAP:], c


def ref_trade(o: list, c: list, tr) -> tuple[list, list]:
    sid = tr.signal_id
    if sid in [t.signal_id for t in c]:
        return o, c
    mult = next((t.multiplier for t in o if t.signal_id == sid), 1.0)
    closed = list(c)
    bisect.insort(
        closed, ClosedTrade(sid, to_micros(tr.exit_ts), float(tr.r_multiple) * mult), key=lambda t: t.exit_ts_us
    )
    return [t for t in o if t.signal_id != sid], closed[-CLOSED_CAP:]


def ref_features(o: list, c: list, at: int) -> dict[str, float]:
    day_start = at - at % DAY_US
    equity = peak = 0.0
    n = 0
    for t in c:
        if day_start <= t.exit_ts_us <= at:
            equity += t.pnl_r
            peak = max(peak, equity)
            n += 1
    now = [t for t in o if at - account.OPEN_TTL_US <= t.ts_us <= at]
    return {
        "acct_session_pnl_r": equity,
        "acct_drawdown_r": peak - equity,
        "acct_open_risk_r": math.fsum(t.multiplier for t in now),
        "acct_session_trades": float(n),
        "acct_open_trades": float(len(now)),
    }


hours = st.integers(min_value=0, max_value=24 * 10)  # ten days: decisions expire after seven
step = st.one_of(
    st.tuples(st.just("decide"), st.integers(0, 9), hours, st.sampled_from([0.25, 0.5, 1.0, 1.3, 2.0])),
    st.tuples(st.just("close"), st.integers(0, 9), hours, st.floats(-3, 3, allow_nan=False)),
    st.tuples(st.just("read"), st.just(0), hours, st.just(0.0)),
    st.tuples(st.just("back"), st.integers(0, 40), st.just(0), st.just(0.0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40))
def test_same_states_and_features_as_the_reference(steps):
    with (
        patch.object(account, "OPEN_LEN", OPEN_CAP),
        patch.object(account, "CLOSED_LEN", CLOSED_CAP),
        patch.object(rows, "COMPACT_FROM", 2),
    ):
        _replay(steps)


def _replay(steps: list) -> None:
    state, o, c = AccountState(), [], []
    seen = []
    for kind, n, hour, x in steps:
        seen.append((state, o, c))
        ts = T0 + timedelta(hours=hour)
        if kind == "back":  # continue from an earlier state, whose index a later one took over
            state, o, c = seen[n % len(seen)]
        elif kind == "decide":
            d = decision(f"s{n}", ts, x)
            state, (o, c) = account.apply_decision(state, d), ref_decision(o, c, d)
        elif kind == "close":
            tr = trade(f"s{n}", ts, x)
            state, (o, c) = account.apply_trade(state, tr), ref_trade(o, c, tr)
        else:
            assert account.account_features(state, to_micros(ts)) == ref_features(o, c, to_micros(ts))
        assert list(state.open) == o and list(state.closed) == c
        assert AccountState.from_bytes(state.to_bytes()) == state
        assert AccountState.from_bytes(state.to_json_bytes()) == state


def test_hand_built_states_are_put_in_time_order():
    state = AccountState(
        (OpenTrade("b", 20, 1.0), OpenTrade("a", 10, 2.0), OpenTrade("c", 20, 0.5)),
        (ClosedTrade("y", 9, 1.0), ClosedTrade("x", 3, -1.0)),
    )
    assert [t.signal_id for t in state.open] == ["a", "b", "c"]  # stable: b before c at the same time
    assert [t.signal_id for t in state.closed] == ["x", "y"]
