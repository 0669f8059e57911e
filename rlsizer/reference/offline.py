"""Record the shipped data sets into a warehouse without a broker: the reference adapter and the worker's own input path.

``record_datasets(["AAPL", "EURUSD"], path)`` streams each data set through the reference adapter
loop (``rlsizer.reference.loop``) into an in-process worker that does what the Faust worker does:
every bar, signal and fill is encoded as a record of the ``inputs`` topic (one partition), handed
to ``agents.inputs.InputPath`` with in-memory tables, and every record the path sends (features,
decisions, outcomes, dead letters) is kept with its topic position. The rules decide (no model).
All records are written to the warehouse tables as a replay of the topics would write them, so
``rlsizer evaluate`` and ``rlsizer backtest --no-refresh`` read the result like any other history.

This is for evaluating sizing on the shipped data quickly (seconds instead of the embedded
stack's minutes); the live path is the worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.inputs import InputPath, Source
from agents.memory_tables import MemoryTables
from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap
from config.settings import Settings
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import BarClosed, Event, OrderFilled, SignalRaised, SizeDecided
from streams.topics import subject_for

SETTINGS = Settings(topic_prefix="offline", topic_partitions=1, max_future_seconds=0)


class OfflineWorker:
    """An ``AdapterPort`` (``rlsizer.reference.loop``) answered by the worker's input path, synchronously."""

    def __init__(
        self,
        slot: PolicySlot | None = None,
        strategy_map: StrategyMap | None = None,
        *,
        settings: Settings = SETTINGS,
        now: datetime = datetime(2100, 1, 1, tzinfo=UTC),
    ) -> None:
        self.settings = settings
        self.codec = EventCodec(InMemoryRegistry(), subject_for=subject_for)
        self.path = InputPath(
            settings,
            self.codec,
            strategy_map or StrategyMap.from_spec(""),
            slot or PolicySlot(),
            partitions=lambda: 1,
            clock=lambda: now,
            timer_ns=time.perf_counter_ns,
        )
        self.tables = MemoryTables()
        self.recorded: list[tuple[Event, str, int, int]] = []  # event, topic, partition, offset
        self._offsets: dict[str, int] = {}

    def _record(self, event: Event, topic: str) -> None:
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        self.recorded.append((event, topic, 0, offset))

    def _input(self, event: BarClosed | SignalRaised | OrderFilled) -> list[Any]:
        topic = self.settings.topic("inputs")
        offset = self._offsets.get(topic, 0)
        self._record(event, topic)
        out = self.path.handle(
            Source(topic, 0, offset, event.symbol.encode(), self.codec.encode(topic, event)), self.tables
        )
        sent = []
        for record in out:
            sent.append(self.codec.decode(record.value))
            self._record(sent[-1], record.topic)
        return sent

    def publish_bar(self, bar: BarClosed) -> None:
        self._input(bar)

    def publish_fill(self, fill: OrderFilled) -> None:
        self._input(fill)

    def request_decisions(self, signals: Sequence[SignalRaised], timeout_s: float | None = None) -> list[SizeDecided]:
        return [next(e for e in self._input(s) if isinstance(e, SizeDecided)) for s in signals]

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    def write_warehouse(self, path: Path) -> Path:
        """Write every recorded record to the warehouse at ``path`` (created if missing)."""
        from trainer.warehouse.store import TABLE_FOR_EVENT, open_warehouse  # lazy: loads duckdb only when used

        by_spec: dict[Any, tuple[list[Event], list[tuple[str, int, int]]]] = {}
        for event, topic, partition, offset in self.recorded:
            spec = TABLE_FOR_EVENT[type(event)]
            events, sources = by_spec.setdefault(spec, ([], []))
            events.append(event)
            sources.append((topic, partition, offset))
        with open_warehouse(Path(path)) as wh:
            wh.write({spec: spec.to_arrow(ev, src) for spec, (ev, src) in by_spec.items()}, {})
        return Path(path)


def record_datasets(
    names: Iterable[str], path: Path, *, max_bars: int | None = None, run_id: str = "offline", progress: bool = False
) -> dict[str, str]:
    """Record each data set (``rlsizer.reference.data.load_dataset`` names) into a new warehouse at ``path``.

    All data sets go through one worker, one after the other (their symbols differ, so their
    books do not mix). Returns one summary line per data set. ``path`` must not exist yet.
    """
    from rlsizer.reference.data import load_dataset  # lazy: loads pandas only when used
    from rlsizer.reference.loop import RunConfig, run  # lazy: loads pandas, tqdm only when used

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; record into a new file")
    worker = OfflineWorker()
    lines = {}
    for name in names:
        frame = load_dataset(name)
        if max_bars is not None:
            frame = frame.iloc[:max_bars]
        summary = run(
            frame,
            RunConfig(
                symbol=frame.attrs["symbol"], interval=frame.attrs["interval"], run_id=run_id, adapter_name="offline"
            ),
            worker,
            progress=progress,
        )
        lines[name] = summary.line()
    worker.write_warehouse(path)
    return lines
