"""The glue's cache of decoded table values changes no result, only how often bytes are parsed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agents.glue.handlers import Handlers, Source
from agents.glue.ports import default_pipeline
from agents.glue.state_cache import DecodedCache
from agents.state import StateCorrupt
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import SizeDecided
from streams.settings import Settings
from tests.unit.agents.market import T0, aapl_bars, signal, state_of


class Counting:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, raw: bytes) -> str:
        self.calls.append(raw)
        if raw == b"bad":
            raise StateCorrupt("bad bytes")
        return raw.decode().upper()


def test_equal_bytes_decode_once_and_least_recent_falls_out():
    decode = Counting()
    cache = DecodedCache(decode, maxsize=2)
    assert cache.get(b"a") == "A" and cache.get(bytes(b"a")) == "A"
    assert decode.calls == [b"a"]
    cache.put(b"b", "B")
    cache.get(b"a")  # a is now the most recent
    cache.get(b"c")  # evicts b
    assert len(cache) == 2
    cache.get(b"b")
    assert decode.calls == [b"a", b"c", b"b"]


def test_decode_errors_propagate_and_are_not_remembered():
    decode = Counting()
    cache = DecodedCache(decode, maxsize=4)
    for _ in range(2):
        with pytest.raises(StateCorrupt):
            cache.get(b"bad")
    assert decode.calls == [b"bad", b"bad"] and len(cache) == 0
    with pytest.raises(ValueError):
        DecodedCache(decode, maxsize=0)


def _handlers() -> tuple[Handlers, EventCodec]:
    codec = EventCodec(InMemoryRegistry())
    p = default_pipeline()
    return Handlers(Settings(), codec, p, p.strategy_map_from_spec(""), p.new_slot(), clock=lambda: T0), codec


def _run(fresh_each_call: bool) -> list[tuple]:
    """Signals with table values carried between calls, as the app does."""
    bars = aapl_bars()[:260]
    state = state_of(bars).to_bytes()
    handlers, codec = _handlers()
    account: bytes | None = None
    history: dict[str, bytes] = {}
    seen = []
    for i in range(40):
        if fresh_each_call:
            handlers, codec = _handlers()
        sig = signal(bars[-1].ts_event + timedelta(hours=1 + i), signal_id=f"sig-{i}", strategy_id=f"S{i % 3 + 1}")
        effects = handlers.on_signal(Source("rlsizer.signals", 0, i, b"AAPL", b""), sig, decided=None,
                                     symbol_state=state, history=history.get(sig.strategy_id),
                                     account=handlers.account_of(account))
        account = handlers.account_bytes(effects.account)  # as the app writes it to its table
        events = [codec.decode(o.value) for o in effects.outgoing]
        events = [replace(e, latency_us=0) if isinstance(e, SizeDecided) else e for e in events]
        seen.append((account, tuple(events)))
    return seen


def test_carried_handlers_decide_exactly_as_fresh_ones():
    assert _run(fresh_each_call=False) == _run(fresh_each_call=True)


def test_a_replayed_signal_counts_its_stored_decision_in_an_account_that_missed_it():
    """A worker stopped after recording a decision, before writing the account back: the replay fixes the account."""
    handlers, _ = _handlers()
    state = state_of(aapl_bars()[:260]).to_bytes()
    sig = signal(aapl_bars()[259].ts_event + timedelta(hours=1), signal_id="sig-r", strategy_id="S1")
    src = Source("rlsizer.signals", 0, 7, b"AAPL", b"")
    empty = handlers.account_of(None)
    first = handlers.on_signal(src, sig, decided=None, symbol_state=state, history=None, account=empty)
    again = handlers.on_signal(src, sig, decided=first.decision, symbol_state=state, history=None, account=empty)
    assert [o.value for o in again.outgoing] == [first.decision]  # the same decision, sent again
    assert again.account == first.account and again.decision is None
    counted = handlers.on_signal(src, sig, decided=first.decision, symbol_state=state, history=None, account=first.account)
    assert counted.account is None  # already counted: nothing to write
