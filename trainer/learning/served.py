"""What the worker answers for a replayed signal: ``agents.sizing.decide``, row by row, or its batched twin.

- ``decided_by(data, slot)``: a ``trainer.learning.environment.Decide`` that calls the worker's own
  ``decide(signal, features, slot)`` for each row (an empty slot: the rules), with the row's
  recorded ``SignalRaised`` and its features as a mapping. An ONNX model is called one row at a
  time, as the worker calls it, so the multipliers are the worker's to the last bit.
- ``warmed_up(data, model)``: for a model that is not (yet) an ONNX artifact, e.g. the torch
  agent during training: ``model`` sizes the rows ``decide`` would give a model, and ``decide``
  itself (its fallback) sizes the rows without ``WARMUP_BARS`` bars, where the worker never asks
  a model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agents.sizing import WARMUP_BARS, PolicySlot, decide
from trainer.learning.environment import Decide, LoggedSignals, feature_dicts


def decided_by(data: LoggedSignals, slot: PolicySlot) -> Decide:
    signals = data.account.signals

    def multipliers(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        feats = feature_dicts(data, obs)
        return np.array(
            [decide(signals[data.row_id[r]], f, slot).multiplier for r, f in zip(rows.tolist(), feats, strict=True)],
            dtype=np.float64,
        )

    return multipliers


def warmup_rows(data: LoggedSignals, obs: np.ndarray) -> np.ndarray:
    """Rows whose symbol had fewer than ``WARMUP_BARS`` bars (``decide`` reads a missing count as 0)."""
    if "bars_available" not in data.feature_names:
        return np.ones(obs.shape[0], dtype=bool)
    bars = obs[:, data.feature_names.index("bars_available")]
    return np.array([int(b) < WARMUP_BARS for b in bars.tolist()], dtype=bool)


def warmed_up(data: LoggedSignals, model: Callable[[np.ndarray], np.ndarray]) -> Decide:
    rules = decided_by(data, PolicySlot())

    def multipliers(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        forced = warmup_rows(data, obs)
        out = np.empty(obs.shape[0], dtype=np.float64)
        if (~forced).any():
            out[~forced] = np.asarray(model(obs[~forced]), dtype=np.float64).reshape(-1)
        if forced.any():
            out[forced] = rules(obs[forced], rows[forced])
        return out

    return multipliers
