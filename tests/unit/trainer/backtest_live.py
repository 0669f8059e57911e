"""Helpers for backtest tests: fills -> outcomes, a tiny exported model, and the pure worker in live order.

``PureWorker`` is an adapter port (``rlsizer.reference.loop.AdapterPort``) that does what
the Faust worker does, synchronously: bars, outcomes and signals go through
``agents.pipeline`` with state keyed as the worker keys it, and every event it "publishes"
is recorded with a per-topic offset, ready for the warehouse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from agents.features import FEATURE_NAMES, FEATURE_SET, SymbolState
from agents.outcomes import OpenTrade, close_trade, mark, open_trade
from agents.pipeline import on_bar, on_decision, on_signal, on_trade_closed
from agents.sizing import OnnxPolicy, PolicySlot
from agents.state import AccountState, StrategyHistory
from agents.strategy_map import StrategyMap
from schemas.events import BarClosed, Event, OrderFilled, SignalRaised, SizeDecided, TradeClosed
from trainer.export import export_policy
from trainer.policy_net import SizingAgent
from trainer.warehouse import TABLE_FOR_EVENT, open_warehouse


def tiny_model(seed: int = 7) -> bytes:
    """An untrained SizingAgent over all fs1 features, exported to ONNX (output depends on every feature)."""
    torch.manual_seed(seed)
    d = len(FEATURE_NAMES)
    agent = SizingAgent(np.zeros(d), np.ones(d), hidden=(16,))
    with torch.no_grad():  # a visible spread of multipliers, not ~1.125 everywhere
        agent.actor_mean[-1].weight.mul_(100.0)
    x = np.random.default_rng(seed).normal(size=(8, d)).astype(np.float32)
    return export_policy(agent, feature_names=FEATURE_NAMES, feature_set=FEATURE_SET, eval_features=x).onnx_bytes


class OutcomeTracker:
    """Turns the adapter's fills into ``TradeClosed`` (what an outcome service would publish)."""

    def __init__(self) -> None:
        self.signals: dict[str, SignalRaised] = {}
        self.open: dict[str, OpenTrade] = {}

    def on_signal(self, signal: SignalRaised) -> None:
        self.signals[signal.signal_id] = signal

    def on_bar(self, bar: BarClosed) -> None:
        for sid, trade in list(self.open.items()):
            self.open[sid] = mark(trade, bar)

    def on_fill(self, fill: OrderFilled) -> TradeClosed | None:
        if fill.leg == "ENTRY":
            self.open[fill.signal_id] = open_trade(self.signals[fill.signal_id], fill)
            return None
        trade = self.open.pop(fill.signal_id)
        return close_trade(trade, fill, ts_init=fill.ts_event)


@dataclass
class PureWorker:
    slot: PolicySlot
    strategy_map: StrategyMap = field(default_factory=lambda: StrategyMap.from_spec(""))
    recorded: list[tuple[Event, int, int]] = field(default_factory=list)  # event, partition, offset
    decisions: dict[str, SizeDecided] = field(default_factory=dict)
    swap_at: int | None = None  # bar count after which ``later`` replaces the slot's policy
    later: object = None

    def __post_init__(self) -> None:
        self.bars: dict[str, SymbolState] = {}
        self.hist: dict[tuple[str, str], StrategyHistory] = {}
        self.acct: dict[str, AccountState] = {}
        self.tracker = OutcomeTracker()
        self._offsets: dict[str, int] = {}
        self.n_bars = 0

    def _record(self, event: Event) -> None:
        table = TABLE_FOR_EVENT[type(event)].name
        off = self._offsets.get(table, 0)
        self._offsets[table] = off + 1
        self.recorded.append((event, 0, off))

    def _outcome(self, trade: TradeClosed) -> None:
        self._record(trade)
        key = (trade.strategy_id, trade.symbol)
        self.hist[key], self.acct[trade.symbol] = on_trade_closed(
            self.hist.get(key) or StrategyHistory.empty(trade.strategy_id), self.acct.get(trade.symbol) or AccountState(), trade
        )

    # -- AdapterPort --------------------------------------------------------------------------
    def publish_bar(self, bar: BarClosed) -> None:
        self._record(bar)
        self.bars[bar.symbol] = on_bar(self.bars.get(bar.symbol), bar)
        self.tracker.on_bar(bar)
        self.n_bars += 1
        if self.swap_at is not None and self.n_bars == self.swap_at:
            self.slot.swap(self.later)  # type: ignore[arg-type]

    def publish_fill(self, fill: OrderFilled) -> None:
        self._record(fill)
        trade = self.tracker.on_fill(fill)
        if trade is not None:
            self._outcome(trade)

    def request_decisions(self, signals: Sequence[SignalRaised], timeout_s: float | None = None) -> list[SizeDecided]:
        out = []
        for s in signals:
            self._record(s)
            self.tracker.on_signal(s)
            acct = self.acct.get(s.symbol) or AccountState()
            features, decision = on_signal(
                s, symbol_state=self.bars.get(s.symbol),
                history=self.hist.get((s.strategy_id, s.symbol)) or StrategyHistory.empty(s.strategy_id),
                account=acct, strategy_map=self.strategy_map, slot=self.slot, now=s.ts_event,
            )
            self.acct[s.symbol] = on_decision(acct, decision)
            self._record(features)
            self._record(decision)
            self.decisions[s.signal_id] = decision
            out.append(decision)
        return out

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    # -- warehouse ----------------------------------------------------------------------------
    def write_warehouse(self, path: Path) -> Path:
        by_spec: dict = {}
        for event, partition, offset in self.recorded:
            spec = TABLE_FOR_EVENT[type(event)]
            events, sources = by_spec.setdefault(spec, ([], []))
            events.append(event)
            sources.append((f"test.{spec.name}", partition, offset))
        with open_warehouse(path) as wh:
            wh.write({spec: spec.to_arrow(ev, src) for spec, (ev, src) in by_spec.items()}, {})
        return path


def model_policy_bytes(onnx: bytes, version: str) -> OnnxPolicy:
    return OnnxPolicy(onnx, feature_names=FEATURE_NAMES, version=version)
