"""What the glue needs of the pure pipeline, as one bundle of callables.

``default_pipeline()`` binds ``agents.pipeline`` (imported when called, never at
import time). Tests may bind another pure implementation; the glue does not care.
State objects cross Faust tables as bytes: ``to_bytes()`` / ``Type.from_bytes()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    on_bar: Callable[[Any, Any], Any]
    on_signal: Callable[..., tuple[Any, Any]]
    on_trade_closed: Callable[[Any, Any, Any], tuple[Any, Any]]
    on_decision: Callable[[Any, Any], Any]
    symbol_state_from_bytes: Callable[[bytes], Any]
    history_from_bytes: Callable[[bytes], Any]
    account_from_bytes: Callable[[bytes], Any]
    empty_history: Callable[[str], Any]
    empty_account: Callable[[], Any]
    bar_rejected: type[Exception]
    unknown_strategy: type[Exception]
    new_slot: Callable[[], Any]
    strategy_map_from_spec: Callable[[str], Any]


def default_pipeline() -> Pipeline:
    from agents import pipeline as p
    from agents.features import BarRejected, SymbolState
    from agents.sizing import PolicySlot
    from agents.state import AccountState, StrategyHistory
    from agents.strategy_map import StrategyMap, UnknownStrategy

    return Pipeline(
        on_bar=p.on_bar,
        on_signal=p.on_signal,
        on_trade_closed=p.on_trade_closed,
        on_decision=p.on_decision,
        symbol_state_from_bytes=SymbolState.from_bytes,
        history_from_bytes=StrategyHistory.from_bytes,
        account_from_bytes=AccountState.from_bytes,
        empty_history=StrategyHistory.empty,
        empty_account=AccountState,
        bar_rejected=BarRejected,
        unknown_strategy=UnknownStrategy,
        new_slot=PolicySlot,
        strategy_map_from_spec=StrategyMap.from_spec,
    )
