"""Live/replay parity: does a backtest reproduce what the worker decided and computed?

``check_parity(run, history)`` compares, for each signal of the window,

- the multiplier of the backtest with the recorded ``SizeDecided`` (only where the
  live decision came from the same model version as the run, ``None`` for rules);
- every recomputed feature with the recorded ``FeaturesComputed`` (both are the same
  float64 computation, so any difference beyond rounding means the worker's state
  differed), and why a differing feature group can differ.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from trainer.backtest import PolicyRun
from trainer.backtest_events import History

FEATURE_TOLERANCE: Final = 1e-9

WHY: Final[dict[str, str]] = {
    "strat": "strategy history differs: an outcome stamped at or before the signal was applied after it live "
    "(the outcomes and signals agents run concurrently), or an outcome is missing from the warehouse",
    "acct": "account differs: an outcome or decision stamped at or before the signal was applied after it live, "
    "or the warm-up decisions before the window differ from the ones the worker made",
    "signal": "signal-only feature: the recorded signal or the strategy map differs from what the worker had",
    "bars": "bar state differs: the worker decided before applying a bar stamped at or before the signal "
    "(the bars and signals agents run concurrently), or bars are missing from the warehouse",
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
    compared: int  # window signals decided live by the run's model version (or rules)
    other_policy: int  # decided live by another version: not comparable
    not_decided_live: int
    max_abs_diff: float
    mismatches: tuple[Mismatch, ...]  # |diff| > tolerance
    features_compared: int
    feature_diffs: Mapping[str, int]  # feature name -> signals where it differs
    feature_examples: Mapping[str, Mismatch]

    def ok(self) -> bool:
        return not self.mismatches and not self.feature_diffs

    def summary(self) -> str:
        lines = [
            f"parity: {self.compared} decisions compared, max |diff| {self.max_abs_diff:.3g}, "
            f"{len(self.mismatches)} beyond tolerance; {self.other_policy} decided live by another policy, "
            f"{self.not_decided_live} without a live decision",
            f"features: {self.features_compared} signals compared, {len(self.feature_diffs)} feature(s) differ",
        ]
        for m in self.mismatches[:10]:
            lines.append(f"  decision {m.signal_id}: live {m.live!r} replay {m.replay!r}")
        for group in sorted({feature_group(n) for n in self.feature_diffs}):
            names = [n for n in self.feature_diffs if feature_group(n) == group]
            lines.append(f"  {', '.join(f'{n} ({self.feature_diffs[n]})' for n in names)}: {WHY[group]}")
            for n in names[:3]:
                ex = self.feature_examples[n]
                lines.append(f"    e.g. {ex.signal_id}: live {ex.live!r} replay {ex.replay!r}")
        return "\n".join(lines)


def _differs(a: float, b: float) -> bool:
    return not math.isclose(a, b, rel_tol=FEATURE_TOLERANCE, abs_tol=FEATURE_TOLERANCE)


def check_parity(run: PolicyRun, history: History, *, tolerance: float = 1e-6) -> ParityReport:
    compared = other = absent = 0
    max_diff = 0.0
    mismatches: list[Mismatch] = []
    for sid, m in zip(run.signal_ids, run.multiplier):
        live = history.decisions.get(sid)
        if live is None:
            absent += 1
            continue
        if live.model_version != run.model_version:
            other += 1
            continue
        compared += 1
        diff = abs(float(m) - float(live.multiplier))
        max_diff = max(max_diff, diff)
        if diff > tolerance:
            mismatches.append(Mismatch(signal_id=sid, live=float(live.multiplier), replay=float(m)))
    diffs: Counter[str] = Counter()
    examples: dict[str, Mismatch] = {}
    n_features = 0
    for sid in run.signal_ids:
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
        features_compared=n_features,
        feature_diffs=MappingProxyType(dict(sorted(diffs.items()))),
        feature_examples=MappingProxyType(examples),
    )
