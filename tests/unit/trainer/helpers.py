"""Builders for small hand-made LoggedSignals with overridable defaults."""

from __future__ import annotations

import numpy as np

from trainer.environment import ACCOUNT_FEATURES, LoggedSignals


def logged(
    r: list[float],
    *,
    episode: list[int] | None = None,
    cost: float = 0.0,
    extra: dict[str, list[float]] | None = None,
    family: list[str] | None = None,
) -> LoggedSignals:
    n = len(r)
    extra = extra or {"sig_q_score": [0.5] * n, "sig_atr_pct": [0.01] * n}
    names = (*ACCOUNT_FEATURES, *extra)
    feats = np.column_stack([np.full((n, 3), 99.0)] + [np.asarray(v, dtype=np.float64) for v in extra.values()])
    episode = episode if episode is not None else [0] * n
    ts = np.datetime64("2024-01-01T00:00:00", "us") + np.arange(n).astype("timedelta64[m]").astype("timedelta64[us]")
    return LoggedSignals(
        features=feats.astype(np.float32),
        feature_names=names,
        r_multiple=np.asarray(r, dtype=np.float64),
        cost_r=np.full(n, cost),
        episode_id=np.asarray(episode, dtype=np.int64),
        family=np.asarray(family if family is not None else ["EmaCross"] * n),
        ts=ts,
    )
