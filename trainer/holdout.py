"""Held-out scoring of every policy of a round, and the production promotion rule.

Each policy is replayed over the held-out window once (``score_policies``); the gate and the
report then reuse those multipliers (``Precomputed``), so a slow policy (the rules, an ONNX
champion) is not replayed again per comparison.

Promotion rule (``promotion_verdict``). ``trainer.gate.promotion_decision`` compares the
challenger with every reference; we *require* a pass only against the policies that would
otherwise be serving or that the bot would use without us:

- the current champion (if any): never deploy a model worse than the one serving;
- ``rules``: what serves when there is no model, and the fallback;
- ``fixed_1x``: the bot's own sizing, i.e. "is sizing worth doing at all".

Half-Kelly, volatility targeting and the plain-PPO ablation are scored and reported but not
required: half-Kelly on a positive-edge family sits at a different risk level (it is allowed
to lever up to 2x and drops to the 0.25 floor elsewhere), so "beat it on return *and* CVaR with
95 % evidence" is a research question, not a deployment criterion; the ablation only tells
whether the CVaR constraint helps. A champion that cannot be loaded or scored blocks promotion
(we cannot show the challenger is not worse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.baselines import Policy
from trainer.environment import LoggedSignals, replay, trade_rewards
from trainer.gate import GateDecision

CHAMPION = "champion"
REQUIRED_BASELINES: tuple[str, ...] = ("fixed_1x", "rules")


@dataclass(frozen=True, slots=True, eq=False)
class Precomputed:
    """A policy whose multipliers over one dataset are already known."""

    name: str
    values: np.ndarray

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        if len(data) != self.values.shape[0]:
            raise ValueError(f"{self.name}: precomputed for {self.values.shape[0]} rows, asked for {len(data)}")
        return self.values


@dataclass(frozen=True, slots=True, eq=False)
class OnnxModelPolicy:
    """A served ONNX model (``agents.sizing.OnnxPolicy``) replayed with its own account state.

    ``feature_names`` is the model's column order (from its manifest); the replay's observation
    columns are picked in that order, so a champion trained on another column order still works.
    """

    model: object  # agents.sizing.OnnxPolicy (typed loosely: agents is another package)
    feature_names: tuple[str, ...]
    name: str = CHAMPION

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        missing = [n for n in self.feature_names if n not in data.feature_names]
        if missing:
            raise ValueError(f"{self.name} needs features the data lacks: {', '.join(missing[:5])}")
        cols = np.array([data.feature_names.index(n) for n in self.feature_names], dtype=np.int64)
        return replay(data, lambda obs: self.model.predict_batch(obs[:, cols]).astype(np.float64)).multipliers  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True, eq=False)
class PolicyRun:
    """One policy over the held-out window, rows in time order."""

    name: str
    multipliers: np.ndarray
    rewards: np.ndarray
    family: np.ndarray
    ts: np.ndarray


def score_policies(holdout: LoggedSignals, policies: Sequence[Policy]) -> tuple[dict[str, PolicyRun], list[Precomputed]]:
    """Replay each policy once over ``holdout``.

    Returns the runs (time order, ties by row order) and stand-ins that hand the gate the same
    multipliers in ``holdout``'s row order, in the order the policies were given.
    """
    order = np.lexsort((np.arange(len(holdout)), holdout.ts))
    runs: dict[str, PolicyRun] = {}
    stand_ins: list[Precomputed] = []
    for policy in policies:
        if policy.name in runs:
            raise ValueError(f"duplicate policy name {policy.name!r}")
        m = np.asarray(policy.multipliers(holdout), dtype=np.float64)
        if m.shape != (len(holdout),):
            raise ValueError(f"policy {policy.name!r} returned shape {m.shape}, expected ({len(holdout)},)")
        r = trade_rewards(m, holdout.r_multiple, holdout.cost_r)
        runs[policy.name] = PolicyRun(
            name=policy.name, multipliers=m[order], rewards=r[order], family=holdout.family[order], ts=holdout.ts[order]
        )
        stand_ins.append(Precomputed(policy.name, m))
    return runs, stand_ins


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    promote: bool
    reason: str
    required: tuple[str, ...]


def promotion_verdict(decision: GateDecision, *, required: Sequence[str], champion_problem: str | None = None) -> Verdict:
    """Promote only if every *required* comparison of ``decision`` passed (see module docstring)."""
    required = tuple(required)
    if champion_problem is not None:
        return Verdict(promote=False, reason=f"not promoted: the champion could not be scored ({champion_problem})", required=required)
    by_ref = {c.reference: c for c in decision.comparisons}
    absent = [name for name in required if name not in by_ref]
    if absent:
        return Verdict(promote=False, reason=f"not promoted: no comparison with required {', '.join(absent)}", required=required)
    failed = [by_ref[name] for name in required if not by_ref[name].passed]
    informative = [c.reference for c in decision.comparisons if c.reference not in required and not c.passed]
    note = f" (not required, not beaten: {', '.join(informative)})" if informative else ""
    if failed:
        why = "; ".join(
            f"vs {c.reference}: return diff lower bound {c.return_diff_lower:+.3f} R (needs > 0), "
            f"tail CVaR5 diff lower bound {c.cvar_diff_lower:+.3f} R (needs >= {-c.cvar_margin:+.3f})"
            for c in failed
        )
        return Verdict(promote=False, reason=f"not promoted: {why}{note}", required=required)
    return Verdict(
        promote=True,
        reason=f"promoted: higher return and CVaR5 no worse than {', '.join(required)} with evidence{note}",
        required=required,
    )
