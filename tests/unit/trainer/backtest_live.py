"""Helpers for backtest tests: a tiny exported model, and the worker's own input path run in live order.

``PureWorker`` is an adapter port (``rlsizer.reference.loop.AdapterPort``) that does what
the Faust worker does, synchronously and without a broker: every input goes through
``agents.inputs.InputPath`` on in-memory tables, in the order the adapter publishes, and
every record read or sent is recorded with its topic position, ready for the warehouse.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.features import FEATURE_NAMES, FEATURE_SET
from agents.inputs import InputPath, Source
from agents.sizing import OnnxPolicy, PolicySlot, load_policy
from agents.strategy_map import StrategyMap
from config.settings import Settings
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import BarClosed, Event, EventRejected, OrderFilled, SignalRaised, SizeDecided
from streams.topics import subject_for
from tests.unit.agents.memory_tables import MemoryTables
from trainer.learning.export import export_policy
from trainer.learning.policy_net import SizingAgent
from trainer.warehouse.store import TABLE_FOR_EVENT, open_warehouse

SETTINGS = Settings(topic_prefix="test", topic_partitions=1, max_future_seconds=0)


def tiny_model(seed: int = 7) -> bytes:
    """An untrained SizingAgent over all fs1 features, exported to ONNX (output depends on every feature)."""
    torch.manual_seed(seed)
    d = len(FEATURE_NAMES)
    agent = SizingAgent(np.zeros(d), np.ones(d), hidden=(16,))
    with torch.no_grad():  # a visible spread of multipliers, not ~1.125 everywhere
        agent.actor_mean[-1].weight.mul_(100.0)
    x = np.random.default_rng(seed).normal(size=(8, d)).astype(np.float32)
    return export_policy(agent, feature_names=FEATURE_NAMES, feature_set=FEATURE_SET, eval_features=x).onnx_bytes


@dataclass
class PureWorker:
    slot: PolicySlot
    strategy_map: StrategyMap = field(default_factory=lambda: StrategyMap.from_spec(""))
    recorded: list[tuple[Event, str, int, int]] = field(default_factory=list)  # event, topic, partition, offset
    decisions: dict[str, SizeDecided] = field(default_factory=dict)
    swap_at: int | None = None  # bar count after which ``later`` replaces the slot's policy
    later: object = None

    def __post_init__(self) -> None:
        self.codec = EventCodec(InMemoryRegistry(), subject_for=subject_for)
        self.path = InputPath(
            SETTINGS,
            self.codec,
            self.strategy_map,
            self.slot,
            partitions=lambda: 1,
            clock=lambda: datetime(2030, 1, 1, tzinfo=UTC),
            timer_ns=time.perf_counter_ns,
        )
        self.tables = MemoryTables()
        self._offsets: dict[str, int] = {}
        self.n_bars = 0

    def _record(self, event: Event, topic: str) -> int:
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        self.recorded.append((event, topic, 0, offset))
        return offset

    def _input(self, event: Event) -> list[Any]:
        topic = SETTINGS.topic("inputs")
        offset = self._record(event, topic)
        out = self.path.handle(
            Source(topic, 0, offset, event.symbol.encode(), self.codec.encode(topic, event)), self.tables
        )
        sent = []
        for record in out:
            sent.append(self.codec.decode(record.value))
            self._record(sent[-1], record.topic)
        return sent

    # -- AdapterPort --------------------------------------------------------------------------
    def publish_bar(self, bar: BarClosed) -> None:
        self._input(bar)
        self.n_bars += 1
        if self.swap_at is not None and self.n_bars == self.swap_at:
            self.slot.swap(self.later)  # type: ignore[arg-type]

    def publish_fill(self, fill: OrderFilled) -> None:
        self._input(fill)

    def request_decisions(self, signals: Sequence[SignalRaised], timeout_s: float | None = None) -> list[SizeDecided]:
        out = []
        for s in signals:
            decision = next(e for e in self._input(s) if isinstance(e, SizeDecided))
            self.decisions[s.signal_id] = decision
            out.append(decision)
        return out

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    @property
    def rejected(self) -> list[EventRejected]:
        return [e for e, *_ in self.recorded if isinstance(e, EventRejected)]

    # -- warehouse ----------------------------------------------------------------------------
    def write_warehouse(self, path: Path) -> Path:
        by_spec: dict = {}
        for event, topic, partition, offset in self.recorded:
            spec = TABLE_FOR_EVENT[type(event)]
            events, sources = by_spec.setdefault(spec, ([], []))
            events.append(event)
            sources.append((topic, partition, offset))
        with open_warehouse(path) as wh:
            wh.write({spec: spec.to_arrow(ev, src) for spec, (ev, src) in by_spec.items()}, {})
        return path


def model_policy_bytes(onnx: bytes, version: str) -> OnnxPolicy:
    return load_policy(onnx, feature_names=FEATURE_NAMES, version=version)
