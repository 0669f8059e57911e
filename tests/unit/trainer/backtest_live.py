"""Helpers for backtest tests: a tiny exported model, and the worker's own input path run in live order.

``PureWorker`` is an adapter port (``rlsizer.reference.loop.AdapterPort``) that does what
the Faust worker does, synchronously and without a broker: every input goes through
``agents.inputs.InputPath`` on in-memory tables, in the order the adapter publishes, and
every record read or sent is recorded with its topic position, ready for the warehouse.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import torch

from agents.features import FEATURE_NAMES, FEATURE_SET
from agents.sizing import OnnxPolicy, PolicySlot, load_policy
from config.settings import Settings
from rlsizer.reference.offline import OfflineWorker
from schemas.events import BarClosed, EventRejected, SignalRaised, SizeDecided
from trainer.learning.export import export_policy
from trainer.learning.policy_net import SizingAgent

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


class PureWorker(OfflineWorker):
    """The offline worker on the test settings, remembering its decisions; ``later`` replaces the slot's
    policy after ``swap_at`` bars (a hot swap at a point of the stream)."""

    def __init__(self, slot: PolicySlot, swap_at: int | None = None, later: object = None) -> None:
        super().__init__(slot, settings=SETTINGS, now=datetime(2030, 1, 1, tzinfo=UTC))
        self.slot, self.swap_at, self.later = slot, swap_at, later
        self.decisions: dict[str, SizeDecided] = {}
        self.n_bars = 0

    def publish_bar(self, bar: BarClosed) -> None:
        super().publish_bar(bar)
        self.n_bars += 1
        if self.swap_at is not None and self.n_bars == self.swap_at:
            self.slot.swap(self.later)  # type: ignore[arg-type]

    def request_decisions(self, signals: Sequence[SignalRaised], timeout_s: float | None = None) -> list[SizeDecided]:
        out = super().request_decisions(signals, timeout_s)
        self.decisions.update((s.signal_id, d) for s, d in zip(signals, out, strict=True))
        return out

    @property
    def rejected(self) -> list[EventRejected]:
        return [e for e, *_ in self.recorded if isinstance(e, EventRejected)]


def model_policy_bytes(onnx: bytes, version: str) -> OnnxPolicy:
    return load_policy(onnx, feature_names=FEATURE_NAMES, version=version)
