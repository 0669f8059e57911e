"""Sizing policies scored beside the learned one, all replayed over the same recorded signals.

Every policy satisfies ``Policy``: ``multipliers(data) -> np.ndarray [n]`` in the row order of
``data``. Policies that read account state are replayed through the environment, so their
account features come from their own past sizes, exactly as for the learned policy. Policies
that need estimates (half-Kelly, volatility target) are fitted on the *training* window only,
then applied to the held-out window.

- ``FixedPolicy``: the bot's own sizing (1x), or any constant.
- ``RulePolicy``: the worker's rules, through ``agents.sizing.decide`` with no model loaded
  (so the warm-up fallback and its 1.0 cap apply as live).
- ``ServedModel``: an ONNX model as the worker serves it (``agents.sizing.decide``, one row at a
  time); ``ModelPolicy``: a torch agent, batched, with the worker's warm-up fallback.
- ``HalfKellyPolicy``: half the Kelly fraction of each strategy's net R outcomes, converted from
  a fraction of equity to a multiplier of the base position, with the mean shrunk toward zero
  for short histories (see the class).
- ``VolTargetPolicy``: ``target / ATR %`` with a target per symbol chosen so that the mean
  multiplier is 1 on the training window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agents.sizing import PolicySlot
from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN
from trainer.learning.environment import LoggedSignals, replay
from trainer.learning.policy_net import SizingAgent
from trainer.learning.served import decided_by, warmed_up


@runtime_checkable
class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def multipliers(self, data: LoggedSignals) -> np.ndarray: ...


def _clamp(x: np.ndarray | float) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.float64), MULTIPLIER_MIN, MULTIPLIER_MAX)


@dataclass(frozen=True, slots=True)
class FixedPolicy:
    """Always the same multiplier (1x by default)."""

    multiplier: float = 1.0
    name: str = "fixed_1x"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return _clamp(np.full(len(data), self.multiplier))


@dataclass(frozen=True, slots=True)
class RulePolicy:
    """The worker's rules (``agents.sizing.decide`` with no model), on the policy's own account features."""

    name: str = "rules"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return replay(data, decided_by(data, PolicySlot())).multipliers


@dataclass(frozen=True, slots=True, eq=False)
class ServedModel:
    """An ONNX model (``agents.sizing.OnnxPolicy``) exactly as the worker serves it, with its own account.

    The model reads its features by name, in its manifest's order, so a model trained on another
    column order works; one missing a feature falls back to the rules, as live.
    """

    model: Any  # agents.sizing.OnnxPolicy
    name: str = "model"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return replay(data, decided_by(data, PolicySlot(self.model))).multipliers


@dataclass(frozen=True, slots=True, eq=False)
class ModelPolicy:
    """A torch agent's deterministic (mean-action) sizes, batched, with the worker's warm-up fallback."""

    agent: SizingAgent
    name: str = "model"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return replay(data, warmed_up(data, self.agent.multipliers)).multipliers


DEFAULT_BASE_RISK = 0.01
"""Fraction of equity the bot's base position (1x) risks per trade (1R): the usual 1 %."""
DEFAULT_EDGE_PRIOR_R = 0.1
"""Prior standard deviation of a strategy's true mean R: edges beyond +-0.2 R are rare."""


def shrunk_mean(x: np.ndarray, prior_sd: float = DEFAULT_EDGE_PRIOR_R) -> float:
    """Posterior mean of a strategy's mean R under a N(0, prior_sd^2) prior and the sample's own variance.

    ``mean * n tau^2 / (n tau^2 + s^2)``: a short or noisy history is pulled toward no edge.
    """
    n = x.size
    if n < 2:
        return 0.0
    var = float(np.var(x, ddof=1))
    weight = n * prior_sd**2 / (n * prior_sd**2 + var) if var > 0 else 1.0
    return float(np.mean(x)) * weight


def half_kelly_multiplier(
    x: np.ndarray, *, base_risk: float = DEFAULT_BASE_RISK, prior_sd: float = DEFAULT_EDGE_PRIOR_R
) -> float:
    """Half-Kelly of net R outcomes ``x`` as a multiplier of the base position, in [0.25, 2].

    Kelly's fraction of equity to put at risk is ``mu / sigma^2`` for outcomes measured per unit
    risked (R); the base position risks ``base_risk`` of equity, so the multiplier is
    ``0.5 * mu / (sigma^2 * base_risk)``, with ``mu`` shrunk (``shrunk_mean``). No edge: the floor.
    """
    if x.size < 2:
        return MULTIPLIER_MIN
    var = float(np.var(x, ddof=1))
    mu = shrunk_mean(x, prior_sd)
    if var <= 0 or mu <= 0:
        return MULTIPLIER_MIN if mu <= 0 else MULTIPLIER_MAX
    return float(_clamp(0.5 * mu / (var * base_risk)))


@dataclass(frozen=True, slots=True)
class HalfKellyPolicy:
    """Half-Kelly per strategy (``half_kelly_multiplier`` of its net R in the training window).

    A strategy unseen in training has no evidence of an edge: the floor.
    """

    by_strategy: Mapping[str, float] = field(default_factory=dict)
    base_risk: float = DEFAULT_BASE_RISK
    name: str = "half_kelly"

    @staticmethod
    def fit(
        train: LoggedSignals, *, base_risk: float = DEFAULT_BASE_RISK, prior_sd: float = DEFAULT_EDGE_PRIOR_R
    ) -> HalfKellyPolicy:
        scored = train.scored
        net = (train.r_multiple - train.cost_r)[scored]
        strategy = _strategies(train)[scored]
        by_strategy = {
            sid: half_kelly_multiplier(net[strategy == sid], base_risk=base_risk, prior_sd=prior_sd)
            for sid in sorted(set(strategy.tolist()))
        }
        return HalfKellyPolicy(by_strategy=by_strategy, base_risk=base_risk)

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return _clamp(np.array([self.by_strategy.get(s, MULTIPLIER_MIN) for s in _strategies(data).tolist()]))


def _strategies(data: LoggedSignals) -> np.ndarray:
    signals = data.account.signals
    return np.array([signals[r].strategy_id for r in data.row_id.tolist()], dtype=str)


def _vol_multipliers(target: float | np.ndarray, atr: np.ndarray) -> np.ndarray:
    ratio = np.divide(target, atr, out=np.full(atr.shape, 1.0), where=atr > 0)
    return _clamp(ratio)


def mean_one_target(atr: np.ndarray) -> float:
    """The ATR % target whose multipliers ``clamp(target / atr, 0.25, 2)`` average exactly 1 over ``atr``."""
    positive = atr[np.isfinite(atr) & (atr > 0)]
    if positive.size == 0:
        raise ValueError("no positive sig_atr_pct to target")
    lo, hi = float(positive.min()) * MULTIPLIER_MIN, float(positive.max()) * MULTIPLIER_MAX
    for _ in range(200):  # the mean is continuous and non-decreasing in the target: bisection
        mid = 0.5 * (lo + hi)
        if _vol_multipliers(mid, atr).mean() < 1.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True, slots=True)
class VolTargetPolicy:
    """Volatility targeting: m = clamp(target / sig_atr_pct, 0.25, 2) (1x without an ATR).

    ``fit`` chooses one target per symbol so that the symbol's mean multiplier over the training
    window is 1 (the bot's own average size, spread toward calm markets and away from wild
    ones); a symbol not seen in training gets the target fitted on all of them. Per symbol,
    because an hourly currency and a daily stock differ in ATR % by an order of magnitude.
    """

    target_atr_pct: float
    by_symbol: Mapping[str, float] = field(default_factory=dict)
    name: str = "vol_target"

    @staticmethod
    def fit(train: LoggedSignals) -> VolTargetPolicy:
        atr = train.column("sig_atr_pct").astype(np.float64)
        by_symbol = {}
        for symbol in sorted(set(train.symbol.tolist())):
            own = atr[train.symbol == symbol]
            if np.any(np.isfinite(own) & (own > 0)):
                by_symbol[symbol] = mean_one_target(own)
        return VolTargetPolicy(target_atr_pct=mean_one_target(atr), by_symbol=by_symbol)

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        target = np.array([self.by_symbol.get(s, self.target_atr_pct) for s in data.symbol.tolist()], dtype=np.float64)
        return _vol_multipliers(target, data.column("sig_atr_pct").astype(np.float64))


def fit_baselines(train: LoggedSignals, *, include_rules: bool = True) -> tuple[Policy, ...]:
    """The standard baseline set, fitted on the training window."""
    policies: list[Policy] = [FixedPolicy(), HalfKellyPolicy.fit(train), VolTargetPolicy.fit(train)]
    if include_rules:
        policies.insert(1, RulePolicy())
    return tuple(policies)
