"""The promotion gate: evidence over several walk-forward windows that the challenger earns more
and that its session tail is not worse, with no margin.

Input: the scores of every policy over each held-out window (``trainer.evaluation.walk_forward``), all over
the same signals; sessions are UTC days. Against each *required* reference (the champion if
there is one, ``fixed_1x`` and ``rules``: what serves without a model and what the bot does
without us) the challenger must show, with ``confidence`` (one-sided):

1. **return**: over all windows' sessions together, the lower bound of the paired block-bootstrap
   distribution of ``sum(challenger) - sum(reference)`` is > 0;
2. **session tail, pooled**: the lower bound of ``CVaR5(challenger sessions) - CVaR5(reference
   sessions)`` is >= 0: evidence that the tail is not worse, not absence of evidence that it is;
3. **session tail, every window**: in each window its session CVaR 5% is at least the reference's.

There is no non-inferiority margin: a margin of x % of the reference's tail lets through any
policy that sizes everything up by x % (CVaR is positively homogeneous: 1.05x sizes have exactly
a 5 % worse tail and, on a winning strategy, a surely higher return). At least ``min_windows``
windows are needed. Other references (half-Kelly, volatility targeting, the plain-PPO ablation)
are compared and reported, not required. The reason states the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from trainer.evaluation.metrics import cvar_5, paired_bootstrap
from trainer.evaluation.walk_forward import PolicyScore

CHAMPION = "champion"
REQUIRED_BASELINES: tuple[str, ...] = ("fixed_1x", "rules")

WindowScores = Mapping[str, PolicyScore]


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig:
    confidence: float = 0.95
    """one-sided confidence of the pooled tests"""
    n_boot: int = 1000
    """bootstrap resamples"""
    block: int | None = None
    """bootstrap block length in sessions; None: ceil(n ** (1/3))"""
    seed: int = 0
    """bootstrap seed"""
    min_windows: int = 2
    """held-out windows needed before anything is promoted"""

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.n_boot < 1 or self.min_windows < 1:
            raise ValueError("n_boot and min_windows must be >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    reference: str
    required: bool
    challenger_return: float
    reference_return: float
    return_diff_lower: float
    challenger_tail: float  # session CVaR5, all windows' sessions together
    reference_tail: float
    tail_diff_lower: float
    window_tails: tuple[tuple[float, float], ...]  # (challenger, reference) session CVaR5 per window

    @property
    def windows_not_worse(self) -> int:
        return sum(1 for c, r in self.window_tails if c >= r)

    @property
    def passed(self) -> bool:
        return (
            self.return_diff_lower > 0.0
            and self.tail_diff_lower >= 0.0
            and self.windows_not_worse == len(self.window_tails)
        )

    def describe(self) -> str:
        return (
            f"vs {self.reference}: return {self.challenger_return:+.2f} vs {self.reference_return:+.2f} R "
            f"(diff lower bound {self.return_diff_lower:+.2f}, needs > 0), "
            f"session CVaR5 {self.challenger_tail:+.2f} vs {self.reference_tail:+.2f} R "
            f"(diff lower bound {self.tail_diff_lower:+.2f}, needs >= 0), "
            f"not worse in {self.windows_not_worse}/{len(self.window_tails)} windows"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GateDecision:
    promote: bool
    reason: str
    challenger: str
    comparisons: tuple[Comparison, ...]
    windows: tuple[WindowScores, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.reference for c in self.comparisons if c.required)


def _compare(
    windows: Sequence[WindowScores], challenger: str, reference: str, required: bool, config: GateConfig
) -> Comparison:
    a = np.concatenate([w[challenger].sessions for w in windows])
    b = np.concatenate([w[reference].sessions for w in windows])
    boot = partial(paired_bootstrap, n_boot=config.n_boot, block=config.block, seed=config.seed)
    quantile = 1.0 - config.confidence
    return Comparison(
        reference=reference,
        required=required,
        challenger_return=float(a.sum()),
        reference_return=float(b.sum()),
        return_diff_lower=float(np.quantile(boot(a, b, np.sum), quantile)),
        challenger_tail=cvar_5(a),
        reference_tail=cvar_5(b),
        tail_diff_lower=float(np.quantile(boot(a, b, cvar_5), quantile)),
        window_tails=tuple(
            (w[challenger].metrics.session_cvar_5, w[reference].metrics.session_cvar_5) for w in windows
        ),
    )


def promotion_decision(
    windows: Sequence[WindowScores],
    *,
    challenger: str,
    required: Sequence[str],
    config: GateConfig = GateConfig(),
    champion_problem: str | None = None,
) -> GateDecision:
    """Apply the rule of the module docstring; every other policy in the windows is compared too."""
    windows = tuple(windows)
    names = list(windows[0]) if windows else []
    if challenger not in names:
        raise ValueError(f"no scores for the challenger {challenger!r}")
    for w in windows:
        if list(w) != names:
            raise ValueError("every window must score the same policies")
    missing = [r for r in required if r not in names]
    comparisons = tuple(
        _compare(windows, challenger, ref, ref in required, config) for ref in names if ref != challenger
    )
    sessions = sum(int(w[challenger].sessions.size) for w in windows)
    span = f"{len(windows)} walk-forward window{'s' if len(windows) != 1 else ''} ({sessions} sessions)"

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote=promote, reason=reason, challenger=challenger, comparisons=comparisons, windows=windows
        )

    if champion_problem is not None:
        return decision(False, f"not promoted: the champion could not be scored ({champion_problem})")
    if missing:
        return decision(False, f"not promoted: no scores for required {', '.join(missing)}")
    if len(windows) < config.min_windows:
        return decision(False, f"not promoted: {span}, needs at least {config.min_windows}")
    failed = [c for c in comparisons if c.required and not c.passed]
    informative = [c.reference for c in comparisons if not c.required and not c.passed]
    note = f" (not required, not beaten: {', '.join(informative)})" if informative else ""
    if failed:
        return decision(False, f"not promoted over {span}: " + "; ".join(c.describe() for c in failed) + note)
    passed = "; ".join(c.describe() for c in comparisons if c.required)
    return decision(True, f"promoted over {span} at {config.confidence:.0%}: {passed}{note}")
