"""agents.retention: which decided signals expire, and which new ones are stale."""

from __future__ import annotations

import math
import random

import pytest

from agents.retention import DAY_US, DecidedRetention, Expired, horizon_from_days, is_stale

H = 10 * DAY_US


def test_an_entry_expires_once_a_newer_signal_of_its_symbol_is_more_than_the_horizon_later():
    r = DecidedRetention(H)
    assert r.note("AAPL", 0, b"a", 2) == []
    assert r.note("AAPL", H, b"b", 2) == []  # exactly the horizon later: a is still kept
    assert r.note("AAPL", H + 1, b"c", 2) == [Expired(b"a", 2)]
    assert len(r) == 2 and r.watermark("AAPL") == H + 1


def test_symbols_have_their_own_watermarks():
    r = DecidedRetention(H)
    r.note("AAPL", 0, b"a", 0)
    assert r.note("MSFT", 5 * H, b"m", 1) == []  # a later MSFT signal does not age AAPL's entries
    assert not r.stale("AAPL", 0) and r.stale("MSFT", 3 * H)
    assert r.note("AAPL", 2 * H, b"a2", 0) == [Expired(b"a", 0)]


def test_a_signal_older_than_the_horizon_before_the_watermark_is_stale():
    r = DecidedRetention(H)
    assert not r.stale("AAPL", -10 * H)  # a symbol with nothing decided yet: never stale
    r.note("AAPL", 3 * H, b"a", 0)
    assert r.stale("AAPL", 2 * H - 1)
    assert not r.stale("AAPL", 2 * H) and not r.stale("AAPL", 9 * H)
    r.note("AAPL", H, b"late", 0)  # an out-of-order signal within the horizon: the watermark stays
    assert r.watermark("AAPL") == 3 * H


def test_the_newest_entry_never_expires_so_the_watermark_survives_a_rebuild():
    r = DecidedRetention(H)
    for i in range(50):
        r.note("AAPL", i * H, f"s{i}".encode(), 1)
    kept = {key for heap in r._kept.values() for _, key, _ in heap}
    assert kept == {b"s48", b"s49"}
    r2 = DecidedRetention(H)
    assert r2.rebuild([("AAPL", 48 * H, b"s48", 1), ("AAPL", 49 * H, b"s49", 1)]) == []
    assert r2.watermark("AAPL") == r.watermark("AAPL") and r2.stale("AAPL", 47 * H) and not r2.stale("AAPL", 48 * H)


def test_rebuild_starts_again_and_returns_what_is_already_past_the_horizon():
    r = DecidedRetention(H)
    r.note("OLD", 0, b"gone", 0)
    expired = r.rebuild([("AAPL", 0, b"a", 0), ("AAPL", 3 * H, b"b", 0), ("AAPL", 2 * H, b"c", 0), ("IBM", 0, b"i", 4)])
    assert sorted(expired) == [Expired(b"a", 0)]
    assert r.watermark("OLD") is None and r.watermark("AAPL") == 3 * H and len(r) == 3


def test_horizon_zero_keeps_everything_and_nothing_is_stale():
    r = DecidedRetention(0)
    for i in range(5):
        assert r.note("AAPL", i * 100 * DAY_US, b"k%d" % i, 0) == []
    assert not r.stale("AAPL", -(10**18)) and len(r) == 0
    assert r.rebuild([("AAPL", 0, b"a", 0), ("AAPL", 10**15, b"b", 0)]) == []
    assert not is_stale(0, 10**15, 0)


def test_horizon_from_days():
    assert horizon_from_days(0) == 0
    assert horizon_from_days(1.5) == 36 * 3600 * 10**6
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="retention"):
            horizon_from_days(bad)
    with pytest.raises(ValueError):
        DecidedRetention(-1)


def test_random_notes_expire_exactly_the_entries_older_than_their_symbols_cutoff():
    """Against a brute-force model: after any sequence, kept = the entries at or after watermark - horizon."""
    rng = random.Random(7)
    r = DecidedRetention(H)
    noted: list[tuple[str, int, bytes]] = []
    expired: set[bytes] = set()
    for i in range(2000):
        symbol = rng.choice("ABC")
        ts = rng.randrange(0, 40 * H) + i * H // 50  # drifting forward, out of order within ~40 horizons
        key = f"{symbol}{i}".encode()
        if r.stale(symbol, ts):
            wm = r.watermark(symbol)
            assert wm is not None and ts < wm - H
            continue  # the worker refuses it: never noted
        noted.append((symbol, ts, key))
        got = r.note(symbol, ts, key, 0)
        assert not {e.key for e in got} & expired  # each entry expires once
        expired |= {e.key for e in got}
    watermarks = {s: max(ts for sym, ts, _ in noted if sym == s) for s in "ABC"}
    should_expire = {key for sym, ts, key in noted if ts < watermarks[sym] - H}
    assert expired == should_expire
    assert len(r) == len(noted) - len(expired)
