"""Promotion gate: walk-forward split, held-out scoring, and the rule that decides promotion.

Split: whole sessions, by time. Sessions that *start* at or after the cutoff are held out;
sessions that *end* before the cutoff are the training window; a session straddling the cutoff
is dropped from both, so the two windows never overlap and nothing is shuffled across time.

Rule (every comparison over the same held-out trades, paired moving-block bootstrap with
``n_boot`` resamples, one-sided level ``confidence``). The challenger is promoted only if,
against *every* reference policy (the champion if there is one, and each baseline):

1. return:  the lower ``1 - confidence`` quantile of the bootstrap distribution of
   total_return(challenger) - total_return(reference) is > 0  (its return is higher, with
   evidence, not only on the point estimate);
2. tail:    the lower ``1 - confidence`` quantile of
   CVaR5(challenger) - CVaR5(reference) is >= -margin, where margin = max(cvar_tolerance_r,
   cvar_tolerance_rel * |CVaR5(reference)|)  (its CVaR 5% is no worse than the reference's
   beyond a non-inferiority margin of 10% of the reference's own tail, with evidence).

Both tests run on *session* returns by default (``tail_unit="session"``): the bootstrap resamples
blocks of consecutive sessions and the tail is the CVaR 5% of session returns -- the quantity
CVaR-PPO constrains (``CVaR_alpha(G) >= beta`` over episodes). Per-trade CVaR in R scales with
the multiplier itself, so it would refuse every policy that ever sizes up, whatever it does to
the bad days; ``tail_unit="trade"`` keeps that stricter reading available.

Rule 2 asks for evidence that the tail is not worse, rather than absence of evidence that it is
(an upper-bound test would pass a worse tail whenever the window is short and noisy): the gate
must never promote a worse model, and a wrong "no" only costs one retraining cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.baselines import Policy
from trainer.environment import LoggedSignals, episode_returns, trade_rewards
from trainer.metrics import PolicyMetrics, cvar_5, paired_bootstrap, policy_metrics


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig:
    confidence: float = 0.95
    """one-sided confidence of both tests"""
    cvar_tolerance_r: float = 0.05
    """how much worse (in R) the challenger's CVaR 5% may be at the lower bound, at least"""
    cvar_tolerance_rel: float = 0.10
    """or this fraction of the reference's |CVaR 5%|, if larger: the non-inferiority margin"""
    n_boot: int = 1000
    """bootstrap resamples"""
    block: int | None = None
    """bootstrap block length in trades; None: ceil(n ** (1/3))"""
    seed: int = 0
    """bootstrap seed"""
    tail_unit: str = "session"
    """what the tests resample and the tail is measured on: "session" returns or single "trade" rewards"""

    def __post_init__(self) -> None:
        if self.tail_unit not in ("session", "trade"):
            raise ValueError(f"tail_unit must be 'session' or 'trade', got {self.tail_unit!r}")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.cvar_tolerance_r < 0:
            raise ValueError("cvar_tolerance_r must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    reference: str
    return_diff: float
    return_diff_lower: float
    cvar_diff: float
    cvar_diff_lower: float
    cvar_margin: float = 0.0
    passed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GateDecision:
    promote: bool
    reason: str
    table: dict[str, PolicyMetrics]
    """held-out metrics per policy name"""
    comparisons: tuple[Comparison, ...]


def walk_forward_split(data: LoggedSignals, *, holdout_fraction: float = 0.25) -> tuple[LoggedSignals, LoggedSignals]:
    """(train, holdout): the most recent ``holdout_fraction`` of sessions held out, by start time."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    ids, inverse = np.unique(data.episode_id, return_inverse=True)
    ts = data.ts.astype(np.int64)
    start = np.full(ids.size, np.iinfo(np.int64).max)
    end = np.full(ids.size, np.iinfo(np.int64).min)
    np.minimum.at(start, inverse, ts)
    np.maximum.at(end, inverse, ts)
    n_hold = max(1, int(round(holdout_fraction * ids.size)))
    if n_hold >= ids.size:
        raise ValueError(f"need at least 2 sessions to split, got {ids.size}")
    cutoff = np.sort(start)[ids.size - n_hold]
    hold = start[inverse] >= cutoff
    train = end[inverse] < cutoff
    if not train.any():
        raise ValueError("no session ends before the held-out window starts")
    return data.subset(train), data.subset(hold)


def _rewards(policy: Policy, data: LoggedSignals) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(policy.multipliers(data), dtype=np.float64)
    if m.shape != (len(data),):
        raise ValueError(f"policy {policy.name!r} returned shape {m.shape}, expected ({len(data)},)")
    return trade_rewards(m, data.r_multiple, data.cost_r), m


def _time_order(data: LoggedSignals) -> np.ndarray:
    return np.lexsort((np.arange(len(data)), data.ts))


def promotion_decision(
    holdout: LoggedSignals,
    challenger: Policy,
    baselines: Sequence[Policy],
    champion: Policy | None = None,
    config: GateConfig = GateConfig(),
) -> GateDecision:
    """Score every policy on the held-out window and apply the rule in the module docstring."""
    references = ([champion] if champion is not None else []) + list(baselines)
    names = [challenger.name] + [p.name for p in references]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    if not references:
        raise ValueError("the gate needs at least one reference policy (champion or baseline)")

    order = _time_order(holdout)  # metrics and blocks follow time, across sessions
    ts = holdout.ts[order]
    series: dict[str, np.ndarray] = {}
    table: dict[str, PolicyMetrics] = {}
    for policy in [challenger, *references]:
        rewards, mults = _rewards(policy, holdout)
        series[policy.name] = episode_returns(holdout, rewards) if config.tail_unit == "session" else rewards[order]
        table[policy.name] = policy_metrics(
            rewards[order], ts=ts, multipliers=mults, n_boot=config.n_boot, seed=config.seed
        )

    quantile = 1.0 - config.confidence
    comparisons = []
    for ref in references:
        a, b = series[challenger.name], series[ref.name]
        boot = dict(n_boot=config.n_boot, block=config.block, seed=config.seed)
        ret = paired_bootstrap(a, b, np.sum, **boot)
        tail = paired_bootstrap(a, b, cvar_5, **boot)
        ret_lo, tail_lo = float(np.quantile(ret, quantile)), float(np.quantile(tail, quantile))
        margin = max(config.cvar_tolerance_r, config.cvar_tolerance_rel * abs(cvar_5(b)))
        comparisons.append(
            Comparison(
                reference=ref.name,
                return_diff=float(a.sum() - b.sum()),
                return_diff_lower=ret_lo,
                cvar_diff=cvar_5(a) - cvar_5(b),
                cvar_diff_lower=tail_lo,
                cvar_margin=margin,
                passed=ret_lo > 0.0 and tail_lo >= -margin,
            )
        )

    failed = [c for c in comparisons if not c.passed]
    if failed:
        reason = "; ".join(
            f"vs {c.reference}: return diff lower bound {c.return_diff_lower:+.3f} R "
            f"(needs > 0), {config.tail_unit} CVaR5 diff lower bound {c.cvar_diff_lower:+.3f} R "
            f"(needs >= {-c.cvar_margin:+.3f})"
            for c in failed
        )
        return GateDecision(promote=False, reason=f"not promoted: {reason}", table=table, comparisons=tuple(comparisons))
    beaten = ", ".join(c.reference for c in comparisons)
    return GateDecision(
        promote=True,
        reason=f"promoted: higher return and CVaR5 no worse than {beaten} at {config.confidence:.0%}",
        table=table,
        comparisons=tuple(comparisons),
    )
