"""Live/replay parity: does a backtest reproduce what the worker decided and computed?

``check_parity(run, history)`` compares, for each signal of the window that the run's
policy decided live,

- the multiplier, policy and model version of the backtest with the recorded ``SizeDecided``;
- every recomputed feature with the recorded ``FeaturesComputed`` (both are the same
  float64 computation from the same inputs in the same order, so any difference means
  the worker's state differed from the log's), and what a differing feature group reads.

Comparable signals: with the ``live`` policy (``trainer.backtest.run.live_policy``) every
signal decided live; with one model version or the rules, a symbol's signals until the
first one another policy decided live (from there its account holds other multipliers).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from trainer.backtest.events import History
from trainer.backtest.run import PolicyRun

FEATURE_TOLERANCE: Final = 1e-9

WHY: Final[dict[str, str]] = {
    "strat": "strategy history (closed trades of the strategy on the symbol) differs: a fill is missing from the "
    "warehouse, or the worker ran other code",
    "acct": "account (open decisions and closed trades of the symbol) differs: a fill or decision is missing from "
    "the warehouse, the warm-up decisions before the window differ, or the worker ran other code",
    "signal": "signal-only feature: the recorded signal or the strategy map differs from what the worker had",
    "bars": "bar state differs: bars are missing from the warehouse, or the worker ran other code",
}


def feature_group(name: str) -> str:
    if name.startswith("strat_"):
        return "strat"
    if name.startswith("acct_"):
        return "acct"
    if name.startswith(("sig_", "tod_", "dow_", "fam_")):
        return "signal"
    return "bars"


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    signal_id: str
    live: float
    replay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ParityReport:
    compared: int  # window signals this run's policy decided live
    other_policy: int  # decided live by another policy: not comparable
    not_decided_live: int
    max_abs_diff: float
    mismatches: tuple[Mismatch, ...]  # multiplier |diff| > tolerance
    policy_diffs: tuple[str, ...]  # signal ids whose policy or model version differs
    features_compared: int
    feature_diffs: Mapping[str, int]  # feature name -> signals where it differs
    feature_examples: Mapping[str, Mismatch]

    def ok(self) -> bool:
        return not self.mismatches and not self.feature_diffs and not self.policy_diffs

    def summary(self) -> str:
        lines = [
            f"parity: {self.compared} decisions compared, max |diff| {self.max_abs_diff:.3g}, "
            f"{len(self.mismatches)} multipliers and {len(self.policy_diffs)} policies differ; "
            f"{self.other_policy} decided live by another policy, {self.not_decided_live} without a live decision",
            f"features: {self.features_compared} signals compared, {len(self.feature_diffs)} feature(s) differ",
        ]
        for m in self.mismatches[:10]:
            lines.append(f"  decision {m.signal_id}: live {m.live!r} replay {m.replay!r}")
        for sid in self.policy_diffs[:10]:
            lines.append(f"  decision {sid}: another policy or model version than live")
        for group in sorted({feature_group(n) for n in self.feature_diffs}):
            names = [n for n in self.feature_diffs if feature_group(n) == group]
            lines.append(f"  {', '.join(f'{n} ({self.feature_diffs[n]})' for n in names)}: {WHY[group]}")
            for n in names[:3]:
                ex = self.feature_examples[n]
                lines.append(f"    e.g. {ex.signal_id}: live {ex.live!r} replay {ex.replay!r}")
        return "\n".join(lines)


def _differs(a: float, b: float) -> bool:
    return not math.isclose(a, b, rel_tol=FEATURE_TOLERANCE, abs_tol=FEATURE_TOLERANCE)


def check_parity(run: PolicyRun, history: History, *, tolerance: float = 1e-9) -> ParityReport:
    compared = other = absent = 0
    max_diff = 0.0
    mismatches: list[Mismatch] = []
    policy_diffs: list[str] = []
    diffs: Counter[str] = Counter()
    examples: dict[str, Mismatch] = {}
    n_features = 0
    diverged: set[str] = set()  # symbols with a signal another policy decided live (not comparable from there)
    for i, sid in enumerate(run.signal_ids):
        live = history.decisions.get(sid)
        if live is None:
            absent += 1
            continue
        symbol = str(run.symbol[i])
        if not run.as_recorded and (symbol in diverged or live.model_version != run.model_version):
            diverged.add(symbol)
            other += 1
            continue
        compared += 1
        m = float(run.multiplier[i])
        diff = abs(m - float(live.multiplier))
        max_diff = max(max_diff, diff)
        if diff > tolerance:
            mismatches.append(Mismatch(signal_id=sid, live=float(live.multiplier), replay=m))
        if run.policy_used[i] != live.policy or run.decided_by[i] != live.model_version:
            policy_diffs.append(sid)
        live_f = history.features.get(sid)
        if live_f is None:
            continue
        n_features += 1
        mine = run.features[sid].features
        for name in sorted(set(live_f.features) | set(mine)):
            a, b = live_f.features.get(name, math.nan), mine.get(name, math.nan)
            if _differs(a, b):
                diffs[name] += 1
                examples.setdefault(name, Mismatch(signal_id=sid, live=float(a), replay=float(b)))
    return ParityReport(
        compared=compared,
        other_policy=other,
        not_decided_live=absent,
        max_abs_diff=max_diff,
        mismatches=tuple(mismatches),
        policy_diffs=tuple(policy_diffs),
        features_compared=n_features,
        feature_diffs=MappingProxyType(dict(sorted(diffs.items()))),
        feature_examples=MappingProxyType(examples),
    )
