"""The packed account bytes: exact round trip, and the older JSON bytes still load."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.account_codec import is_packed
from agents.state import AccountState, ClosedTrade, OpenTrade, StateCorrupt

ids = st.text(min_size=0, max_size=12)
ts = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False)
accounts = st.builds(
    AccountState,
    st.lists(st.builds(OpenTrade, ids, ts, floats), max_size=20).map(tuple),
    st.lists(st.builds(ClosedTrade, ids, ts, floats), max_size=20).map(tuple),
)


@given(accounts)
def test_round_trip_is_exact_in_both_forms(acct: AccountState):
    for raw in (acct.to_bytes(), acct.to_json_bytes()):
        back = AccountState.from_bytes(raw)
        assert back == acct
        assert [repr(t.multiplier) for t in back.open] == [repr(t.multiplier) for t in acct.open]  # -0.0 stays -0.0


def test_json_bytes_written_by_the_previous_version_load():
    raw = b'{"v":1,"o":[["s1",1700000000000000,1.25]],"c":[["s0",1690000000000000,-0.5]]}'
    assert AccountState.from_bytes(raw) == AccountState(
        (OpenTrade("s1", 1700000000000000, 1.25),), (ClosedTrade("s0", 1690000000000000, -0.5),)
    )


def test_accounts_are_written_packed_unless_an_id_holds_nul():
    plain = AccountState((OpenTrade("a", 1, 1.0),), (ClosedTrade("b", 2, 0.5),))
    assert is_packed(plain.to_bytes())
    for odd_id in ("a\x00b", "lone \ud800 surrogate"):
        odd = AccountState((OpenTrade(odd_id, 1, 1.0),))
        raw = odd.to_bytes()
        assert json.loads(raw)["v"] == 1 and AccountState.from_bytes(raw) == odd


@pytest.mark.parametrize("cut", [3, 10, -1, -9])
def test_truncated_or_padded_packed_bytes_are_rejected(cut: int):
    raw = AccountState((OpenTrade("a", 1, 1.0), OpenTrade("b", 2, 2.0)), (ClosedTrade("c", 3, 0.5),)).to_bytes()
    with pytest.raises(StateCorrupt):
        AccountState.from_bytes(raw[:cut])
    with pytest.raises(StateCorrupt):
        AccountState.from_bytes(raw + b"\x00" * 8)


def test_id_count_must_match_the_header():
    raw = bytearray(AccountState((OpenTrade("a", 1, 1.0), OpenTrade("b", 2, 2.0))).to_bytes())
    raw[17] = ord("x")  # the NUL between the two ids: one id where the header says two
    with pytest.raises(StateCorrupt, match="signal ids"):
        AccountState.from_bytes(bytes(raw))
