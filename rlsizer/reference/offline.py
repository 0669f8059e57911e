"""Record the shipped data sets into a warehouse without a broker: the reference adapter and the worker's pure code.

``record_datasets(["AAPL", "EURUSD"], path)`` streams each data set through the reference adapter
loop (``rlsizer.reference.loop``) into an in-process worker that does what the Faust worker does,
one event at a time in the adapter's order: bars, outcomes and signals go through
``agents.pipeline`` with state keyed as the worker keys it (bars and account per symbol, history
per strategy@symbol), the rules decide (no model), and entry/exit fills become ``TradeClosed``
through ``agents.outcomes``. Every event is written to the warehouse tables with a per-table
offset, as a replay of the topics would. The result is a recorded history that
``rlsizer evaluate`` and ``rlsizer backtest --no-refresh`` read like any other.

This is for evaluating sizing on the shipped data quickly (seconds instead of the embedded
stack's minutes); the live path is the worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from agents.features import SymbolState
from agents.outcomes import OpenTrade, close_trade, mark, open_trade
from agents.pipeline import on_bar, on_decision, on_signal, on_trade_closed
from agents.sizing import PolicySlot
from agents.state import AccountState, StrategyHistory
from agents.strategy_map import StrategyMap
from schemas.events import BarClosed, Event, OrderFilled, SignalRaised, SizeDecided


class OfflineWorker:
    """An ``AdapterPort`` (``rlsizer.reference.loop``) answering synchronously with the worker's pure functions."""

    def __init__(self, slot: PolicySlot | None = None, strategy_map: StrategyMap | None = None) -> None:
        self.slot = slot or PolicySlot()
        self.strategy_map = strategy_map or StrategyMap.from_spec("")
        self.events: list[Event] = []
        self._bars: dict[str, SymbolState] = {}
        self._history: dict[tuple[str, str], StrategyHistory] = {}
        self._account: dict[str, AccountState] = {}
        self._signals: dict[str, SignalRaised] = {}
        self._open: dict[str, OpenTrade] = {}

    def publish_bar(self, bar: BarClosed) -> None:
        self.events.append(bar)
        self._bars[bar.symbol] = on_bar(self._bars.get(bar.symbol), bar)
        for sid, trade in list(self._open.items()):
            if trade.symbol == bar.symbol:
                self._open[sid] = mark(trade, bar)

    def publish_fill(self, fill: OrderFilled) -> None:
        self.events.append(fill)
        if fill.leg == "ENTRY":
            self._open[fill.signal_id] = open_trade(self._signals[fill.signal_id], fill)
            return
        trade = close_trade(self._open.pop(fill.signal_id), fill, ts_init=fill.ts_event)
        self.events.append(trade)
        key = (trade.strategy_id, trade.symbol)
        self._history[key], self._account[trade.symbol] = on_trade_closed(
            self._history.get(key) or StrategyHistory.empty(trade.strategy_id), self._account.get(trade.symbol) or AccountState(), trade
        )

    def request_decisions(self, signals: Sequence[SignalRaised], timeout_s: float | None = None) -> list[SizeDecided]:
        out = []
        for s in signals:
            self.events.append(s)
            self._signals[s.signal_id] = s
            account = self._account.get(s.symbol) or AccountState()
            features, decision = on_signal(
                s, symbol_state=self._bars.get(s.symbol),
                history=self._history.get((s.strategy_id, s.symbol)) or StrategyHistory.empty(s.strategy_id),
                account=account, strategy_map=self.strategy_map, slot=self.slot, now=s.ts_event,
            )
            self._account[s.symbol] = on_decision(account, decision)
            self.events += [features, decision]
            out.append(decision)
        return out

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    def write_warehouse(self, path: Path) -> Path:
        """Append every recorded event to the warehouse at ``path`` (created if missing)."""
        from trainer.warehouse import TABLE_FOR_EVENT, open_warehouse

        by_spec: dict = {}
        offsets: dict[str, int] = {}
        for event in self.events:
            spec = TABLE_FOR_EVENT[type(event)]
            events, sources = by_spec.setdefault(spec, ([], []))
            offset = offsets.get(spec.name, 0)
            offsets[spec.name] = offset + 1
            events.append(event)
            sources.append((f"offline.{spec.name}", 0, offset))
        with open_warehouse(Path(path)) as wh:
            wh.write({spec: spec.to_arrow(ev, src) for spec, (ev, src) in by_spec.items()}, {})
        return Path(path)


def record_datasets(names: Iterable[str], path: Path, *, max_bars: int | None = None, run_id: str = "offline",
                    progress: bool = False) -> dict[str, str]:
    """Record each data set (``rlsizer.reference.data.load_dataset`` names) into a new warehouse at ``path``.

    All data sets go through one worker, one after the other (their symbols differ, so their
    state does not mix). Returns one summary line per data set. ``path`` must not exist yet.
    """
    from rlsizer.reference.data import load_dataset
    from rlsizer.reference.loop import RunConfig, run

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; record into a new file")
    worker = OfflineWorker()
    lines = {}
    for name in names:
        frame = load_dataset(name)
        if max_bars is not None:
            frame = frame.iloc[:max_bars]
        summary = run(frame, RunConfig(symbol=frame.attrs["symbol"], interval=frame.attrs["interval"], run_id=run_id,
                                       adapter_name="offline"), worker, progress=progress)
        lines[name] = summary.line()
    worker.write_warehouse(path)
    return lines
