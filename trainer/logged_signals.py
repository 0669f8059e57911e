"""From the warehouse's point-in-time ``TrainingSet`` to the ``LoggedSignals`` every policy replays over.

The two differ in one respect: a ``TrainingSet`` keeps a feature a row's map lacked as NaN
(it reports what was logged), while ``LoggedSignals`` must be finite. A missing value is
filled with the feature's *neutral* value, the same one the live feature code reads when a
feature cannot be computed yet (``agents.features.FEATURE_NEUTRAL`` for ``fs1``), so a
trained model sees exactly what serving would have given it; names without a neutral value
get 0.0. The logged multiplier, policy and signal ids are not part of ``LoggedSignals``
(the environment is counterfactual: every row is taken at size 1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from trainer.dataset import TrainingSet
from trainer.environment import LoggedSignals

log = logging.getLogger(__name__)


def neutral_values(feature_set: str) -> Mapping[str, float]:
    """The live feature code's neutral values for ``feature_set`` (empty if it is not the served set)."""
    from agents.features import FEATURE_NEUTRAL, FEATURE_SET  # pure module, imports schemas only

    return FEATURE_NEUTRAL if feature_set == FEATURE_SET else {}


def served_feature_names(feature_set: str) -> tuple[str, ...] | None:
    """The serving column order for ``feature_set``, or None (then the dataset's sorted names)."""
    from agents.features import FEATURE_NAMES, FEATURE_SET

    return FEATURE_NAMES if feature_set == FEATURE_SET else None


def to_logged_signals(rows: TrainingSet, *, neutral: Mapping[str, float] | None = None) -> LoggedSignals:
    """``rows`` as ``LoggedSignals``, each missing feature filled with its neutral value."""
    neutral = neutral or {}
    features = np.array(rows.features, dtype=np.float32, copy=True)
    missing = ~np.isfinite(features)
    if missing.any():
        fill = np.array([neutral.get(name, 0.0) for name in rows.feature_names], dtype=np.float32)
        features = np.where(missing, fill[None, :], features)
        per_column = missing.sum(axis=0)
        worst = sorted(zip(per_column.tolist(), rows.feature_names, strict=True), reverse=True)[:3]
        log.info(
            "filled %d missing feature values with neutral values (most in %s)",
            int(missing.sum()),
            ", ".join(f"{name}: {count}" for count, name in worst if count),
        )
    return LoggedSignals(
        features=features,
        feature_names=rows.feature_names,
        r_multiple=np.asarray(rows.r_multiple, dtype=np.float64),
        cost_r=np.asarray(rows.cost_r, dtype=np.float64),
        episode_id=np.asarray(rows.episode_id, dtype=np.int64),
        family=np.asarray(rows.family),
        ts=np.asarray(rows.ts).astype("datetime64[us]"),
    )
