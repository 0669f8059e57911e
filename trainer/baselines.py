"""Baseline sizing policies, all replayed over the same logged episodes as the learned policy.

Every policy satisfies ``Policy``: ``multipliers(data) -> np.ndarray [n]`` in the row order of
``data``. Policies that read account state are replayed sequentially through the environment,
so their account features reflect their own past sizes, exactly like the learned policy.
Policies that need estimates (half-Kelly, volatility target) are fitted on the *training*
window only, then applied to the held-out window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from trainer.environment import MAX_MULTIPLIER, MIN_MULTIPLIER, LoggedSignals, replay
from trainer.policy_net import SizingAgent


@runtime_checkable
class Policy(Protocol):
    name: str

    def multipliers(self, data: LoggedSignals) -> np.ndarray: ...


def _clamp(x: np.ndarray | float) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.float64), MIN_MULTIPLIER, MAX_MULTIPLIER)


@dataclass(frozen=True, slots=True)
class FixedPolicy:
    """Always the same multiplier (1x by default)."""

    multiplier: float = 1.0
    name: str = "fixed_1x"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return _clamp(np.full(len(data), self.multiplier))


@dataclass(frozen=True, slots=True)
class RulePolicy:
    """The production rule policy, ``agents.sizing.rule_multiplier``, on policy-implied features."""

    name: str = "rules"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        from agents.sizing import rule_multiplier  # imported lazily: agents is another team's package

        names = data.feature_names

        def decide(obs: np.ndarray) -> np.ndarray:
            return np.array(
                [rule_multiplier(dict(zip(names, map(float, row), strict=True)))[0] for row in obs],
                dtype=np.float64,
            )

        return replay(data, decide).multipliers


@dataclass(frozen=True, slots=True)
class HalfKellyPolicy:
    """Half-Kelly per strategy family: m_f = clamp(0.5 * mu_f / var_f, 0.25, 2).

    mu_f and var_f are the mean and variance of net R (R - cost) of family f in the training
    window. R is measured in units of the base position's risk, so mu/var is the Kelly fraction
    expressed in base positions. Families with fewer than ``min_trades`` trades, or unseen in
    training, get ``default``; a non-positive edge gets the floor 0.25.
    """

    by_family: Mapping[str, float] = field(default_factory=dict)
    default: float = 1.0
    name: str = "half_kelly"

    @staticmethod
    def fit(train: LoggedSignals, *, min_trades: int = 30, default: float = 1.0) -> HalfKellyPolicy:
        net = train.r_multiple - train.cost_r
        by_family: dict[str, float] = {}
        for fam in sorted(set(map(str, train.family))):
            x = net[train.family == fam]
            if x.size < min_trades:
                continue
            var = float(np.var(x, ddof=1))
            kelly = float(np.mean(x)) / var if var > 0 else 0.0
            by_family[fam] = float(_clamp(0.5 * kelly))
        return HalfKellyPolicy(by_family=by_family, default=default)

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return _clamp(np.array([self.by_family.get(str(f), self.default) for f in data.family]))


@dataclass(frozen=True, slots=True)
class VolTargetPolicy:
    """Volatility targeting: m = clamp(target_atr_pct / sig_atr_pct, 0.25, 2).

    ``fit`` sets the target to the median ATR% of the training window, so a typical-volatility
    signal gets 1x and calmer (wilder) markets get more (less) size.
    """

    target_atr_pct: float
    name: str = "vol_target"

    @staticmethod
    def fit(train: LoggedSignals) -> VolTargetPolicy:
        atr = train.column("sig_atr_pct")
        atr = atr[np.isfinite(atr) & (atr > 0)]
        if atr.size == 0:
            raise ValueError("no positive sig_atr_pct in the training window")
        return VolTargetPolicy(target_atr_pct=float(np.median(atr)))

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        atr = data.column("sig_atr_pct").astype(np.float64)
        ratio = np.divide(self.target_atr_pct, atr, out=np.full(atr.shape, 1.0), where=atr > 0)
        return _clamp(ratio)


@dataclass(frozen=True, slots=True, eq=False)
class ModelPolicy:
    """A trained agent's deterministic (mean-action) sizes, replayed with its own account state.

    Used for the challenger, the champion and the plain-PPO ablation alike.
    """

    agent: SizingAgent
    name: str = "model"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return replay(data, self.agent.multipliers).multipliers


def fit_baselines(train: LoggedSignals, *, include_rules: bool = True) -> tuple[Policy, ...]:
    """The standard baseline set, fitted on the training window."""
    policies: list[Policy] = [FixedPolicy(), HalfKellyPolicy.fit(train), VolTargetPolicy.fit(train)]
    if include_rules:
        policies.insert(1, RulePolicy())
    return tuple(policies)
