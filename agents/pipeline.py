"""The pure per-event functions the Faust glue calls: state in, new state or events out.

The glue only decodes, looks up table state, calls one of these and sends what
comes back; the trainer and backtester call the same functions, so live and
replay agree. Output events get ids derived from the ``signal_id``
(``uuid5``), so re-processing a signal after a crash yields the same event ids
and downstream deduplication holds.
"""

from __future__ import annotations

import time
import uuid
from hashlib import sha1
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

import numpy as np

from agents.features import FEATURE_SET, SymbolState, compute_features
from agents.sizing import PolicySlot, decide
from agents.sizing import feature_vector as _feature_vector
from agents.state import AccountState, StrategyHistory, apply_decision, apply_outcome, apply_trade
from agents.strategy_map import StrategyMap
from schemas.events import BarClosed, FeaturesComputed, SignalRaised, SizeDecided, TradeClosed

_ID_NAMESPACE: Final = uuid.UUID("6f1c7b1e-6a53-4a56-9d1c-2b8f0d1e5a10")
_NAMESPACE_BYTES: Final = _ID_NAMESPACE.bytes


def event_id_for(signal_id: str, kind: str) -> str:
    """A stable event id for the ``kind`` event answering ``signal_id``.

    ``str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{signal_id}"))`` (RFC 4122 version 5),
    built from the SHA-1 digest directly: two are made per signal, and the
    ``uuid.UUID`` object in between cost twice the hash.
    """
    h = bytearray(sha1(_NAMESPACE_BYTES + f"{kind}:{signal_id}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def on_bar(state: SymbolState | None, bar: BarClosed) -> SymbolState:
    """The symbol's state with ``bar`` appended; raises ``BarRejected`` (out_of_order, duplicate, ...)."""
    if state is None:
        state = SymbolState.empty_for(bar)
    return state.updated(bar)


def on_signal(
    signal: SignalRaised,
    *,
    symbol_state: SymbolState | None,
    history: StrategyHistory,
    account: AccountState,
    strategy_map: StrategyMap,
    slot: PolicySlot,
    now: datetime,
) -> tuple[FeaturesComputed, SizeDecided]:
    """Features and the size decision for ``signal`` (raises ``UnknownStrategy``).

    ``history`` is the history of ``signal.strategy_id``; ``now`` becomes the
    events' ``ts_init``; ``latency_us`` is this call's own compute time.
    """
    started = time.perf_counter_ns()
    family = strategy_map.family(signal.strategy_id)
    if history.strategy_id != signal.strategy_id:
        raise ValueError(
            f"signal {signal.signal_id} of {signal.strategy_id!r} given the history of {history.strategy_id!r}"
        )
    features = compute_features(
        signal, symbol_state=symbol_state, history=history, account=account, family=family
    )
    sizing = decide(signal, features, slot)
    computed = FeaturesComputed(
        event_id=event_id_for(signal.signal_id, "features"),
        ts_event=signal.ts_event,
        ts_init=now,
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
        strategy_type=family,
        feature_set=FEATURE_SET,
        features=features,
    )
    latency_us = (time.perf_counter_ns() - started) // 1000
    decided = SizeDecided(
        event_id=event_id_for(signal.signal_id, "decision"),
        ts_event=signal.ts_event,
        ts_init=now,
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
        multiplier=sizing.multiplier,
        qty=signal.base_qty * sizing.multiplier,
        policy=sizing.policy,
        reason=sizing.reason,
        model_version=sizing.model_version,
        latency_us=int(latency_us),
    )
    return computed, decided


def on_trade_closed(
    history: StrategyHistory, account: AccountState, trade: TradeClosed
) -> tuple[StrategyHistory, AccountState]:
    """The strategy's history and the account after ``trade`` closed (idempotent on signal_id)."""
    return apply_outcome(history, trade), apply_trade(account, trade)


def on_decision(account: AccountState, decision: SizeDecided) -> AccountState:
    """The account with ``decision`` counted as open risk until its trade closes."""
    return apply_decision(account, decision)


def feature_vector(features: Mapping[str, float], names: Sequence[str]) -> np.ndarray:
    """float32 vector of ``features`` in the order ``names`` (raises ``MissingFeature``)."""
    return _feature_vector(features, names)
