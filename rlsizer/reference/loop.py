"""The reference adapter loop: replay bars, raise signals, ask rlsizer for sizes, paper-trade them.

For each bar, in time order (an accelerated clock: the next bar is published as
soon as this bar's decisions are back; ``ts_event`` comes from the data):

1. orders decided at the previous bar enter at this bar's open (``OrderFilled`` ENTRY);
2. open positions are advanced through the bar (``OrderFilled`` EXIT on stop, target, time);
3. ``BarClosed`` is published (``ts_event`` = the bar's close time: start + interval);
4. the strategies run on the bars so far; each signal of a strategy that is flat
   is published and sized via the SDK in one batch; a timeout trades at the
   SDK's documented default (multiplier 1.0, i.e. ``base_qty``).

Event order per bar is entry fills, the bar, exit fills, then signals, which is
also their ``ts_event`` order. Positions still open after the last bar are closed
at its close with exit reason ``manual``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.timestamps import to_micros
from rlsizer.reference.data import interval_seconds
from rlsizer.reference.paper import Order, PaperBar, PaperConfig, Position, enter, exit_now, step
from rlsizer.reference.strategies import STRATEGIES, StrategySignal, StrategySpec, evaluate
from schemas.events import BarClosed, OrderFilled, SignalRaised, SizeDecided


class DecisionTimeoutLike(Protocol):
    @property
    def signal_id(self) -> str: ...

    @property
    def multiplier(self) -> float: ...


class AdapterPort(Protocol):
    """What the loop needs of ``streams.adapter_sdk.AdapterClient``."""

    def publish_bar(self, bar: BarClosed) -> None: ...

    def publish_fill(self, fill: OrderFilled) -> None: ...

    def request_decisions(
        self, signals: Sequence[SignalRaised], timeout_s: float | None = None
    ) -> Sequence[SizeDecided | DecisionTimeoutLike]: ...

    def flush(self, timeout_s: float = 30.0) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    symbol: str
    interval: str
    run_id: str
    adapter_name: str = "reference"
    base_qty: float = 100.0
    timeout_s: float | None = None
    paper: PaperConfig = field(default_factory=PaperConfig)
    specs: tuple[StrategySpec, ...] = STRATEGIES


@dataclass(slots=True)
class RunSummary:
    bars: int = 0
    signals: int = 0
    timeouts: int = 0
    entries: int = 0
    exits: int = 0
    not_filled: int = 0
    policies: Counter[str] = field(default_factory=Counter)
    exit_reasons: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        pol = ", ".join(f"{k} {v}" for k, v in sorted(self.policies.items())) or "none"
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.exit_reasons.items())) or "none"
        return (
            f"{self.bars} bars, {self.signals} signals (decisions: {pol}; timeouts {self.timeouts}), "
            f"{self.entries} entries, {self.exits} exits ({why}), {self.not_filled} orders not filled"
        )


def signal_event(sig: StrategySignal, *, cfg: RunConfig, ts: datetime) -> SignalRaised:
    return SignalRaised(
        ts_event=ts,
        signal_id=f"{cfg.adapter_name}-{cfg.run_id}-{cfg.symbol}-{sig.strategy_id}-{to_micros(ts)}",
        strategy_id=sig.strategy_id,
        symbol=cfg.symbol,
        side=sig.side,
        price=sig.price,
        atr=sig.atr,
        score=sig.score,
        q_score=sig.q_score,
        base_qty=cfg.base_qty,
        stop_price=sig.stop_price,
        target_price=sig.target_price,
        adapter=cfg.adapter_name,
        attrs={"family": sig.family, "max_hold_bars": str(sig.max_hold_bars), "run_id": cfg.run_id},
    )


def run(frame: pd.DataFrame, cfg: RunConfig, port: AdapterPort, *, progress: bool = True) -> RunSummary:
    """Replay ``frame`` (from ``rlsizer.reference.data``) through rlsizer; returns what happened."""
    runner = Runner(frame, cfg, port)
    runner.advance(len(frame), progress=progress)
    return runner.finish()


class Runner:
    """The loop, resumable: ``advance(t)`` plays bars up to index ``t``; ``finish()`` closes what is open.

    A caller can stop between bars (the demo trains a model there) and continue
    with positions, pending orders and the strategies' bar history intact.
    """

    def __init__(self, frame: pd.DataFrame, cfg: RunConfig, port: AdapterPort) -> None:
        self.cfg, self.port = cfg, port
        self.step_td = timedelta(seconds=interval_seconds(cfg.interval))
        self.high, self.low, self.close = (frame[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close"))
        self.opens, self.volume = frame["open"].to_numpy(dtype=np.float64), frame["volume"].to_numpy(dtype=np.float64)
        self.starts = [ts.to_pydatetime() for ts in frame.index]
        self.n = len(frame)
        self.t = 0
        self.summary = RunSummary()
        self.pending: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}
        self.bar: PaperBar | None = None

    def _exit_fill(self, strategy_id: str, fill: OrderFilled) -> None:
        self.port.publish_fill(fill)
        self.positions.pop(strategy_id, None)
        self.summary.exits += 1
        self.summary.exit_reasons[fill.exit_reason or "?"] += 1

    def advance(self, until: int, *, progress: bool = True) -> RunSummary:
        cfg, port, summary, pending, positions = self.cfg, self.port, self.summary, self.pending, self.positions
        high, low, close = self.high, self.low, self.close
        until = min(until, self.n)
        with tqdm(total=until - self.t, unit="bar", desc=cfg.symbol, disable=not progress, leave=False) as bar_progress:
            while self.t < until:
                t = self.t
                bar = self.bar = PaperBar(
                    start=self.starts[t],
                    end=self.starts[t] + self.step_td,
                    open=self.opens[t],
                    high=high[t],
                    low=low[t],
                    close=close[t],
                )
                for sid, order in list(pending.items()):
                    entered = enter(order, bar, cfg.paper)
                    if entered is None:
                        summary.not_filled += 1
                    else:
                        positions[sid], fill = entered
                        port.publish_fill(fill)
                        summary.entries += 1
                pending.clear()
                port.publish_bar(
                    BarClosed(
                        ts_event=bar.end,
                        symbol=cfg.symbol,
                        interval=cfg.interval,
                        open=bar.open,
                        high=bar.high,
                        low=bar.low,
                        close=bar.close,
                        volume=self.volume[t],
                    )
                )
                for sid, pos in list(positions.items()):
                    positions[sid], exit_fill = step(pos, bar, cfg.paper)
                    if exit_fill is not None:
                        self._exit_fill(sid, exit_fill)
                fired = [
                    s
                    for s in evaluate(high[: t + 1], low[: t + 1], close[: t + 1], cfg.specs)
                    if s.strategy_id not in positions
                ]
                if fired and t + 1 < self.n:
                    events = [signal_event(s, cfg=cfg, ts=bar.end) for s in fired]
                    answers = port.request_decisions(events, cfg.timeout_s)
                    for sig, event, answer in zip(fired, events, answers, strict=True):
                        summary.signals += 1
                        if isinstance(answer, SizeDecided):
                            summary.policies[answer.policy] += 1
                            qty = answer.qty
                        else:
                            summary.timeouts += 1
                            qty = event.base_qty * answer.multiplier
                        if qty > 0:
                            pending[sig.strategy_id] = Order(
                                signal_id=event.signal_id,
                                symbol=cfg.symbol,
                                side=sig.side,
                                qty=qty,
                                stop_price=sig.stop_price,
                                target_price=sig.target_price,
                                max_hold_bars=sig.max_hold_bars,
                            )
                summary.bars += 1
                self.t += 1
                bar_progress.update(1)
                if summary.signals:
                    bar_progress.set_postfix(signals=summary.signals, timeouts=summary.timeouts, refresh=False)
        port.flush()
        return summary

    def finish(self) -> RunSummary:
        """Close every open position at the last bar's close (exit reason ``manual``) and flush."""
        if self.bar is not None:
            for sid, pos in list(self.positions.items()):
                self._exit_fill(sid, exit_now(pos, self.bar, self.cfg.paper, reason="manual"))
        self.port.flush()
        return self.summary
