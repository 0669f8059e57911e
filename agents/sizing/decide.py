"""Which policy sizes a signal, and what it said.

- ``MODEL``: a model is loaded and answered;
- ``RULES``: no model is loaded, the rules size the signal;
- ``FALLBACK``: the features were insufficient (fewer than ``WARMUP_BARS`` bars
  for the symbol) or the model failed; the rules size the signal but never
  above 1.0, since something is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from agents.sizing.onnx_policy import InferenceFailed, MissingFeature, PolicySlot
from agents.sizing.rules import rule_multiplier
from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN, SignalRaised

WARMUP_BARS: Final = 35
"""Bars a symbol needs before its indicators are all defined (MACD(12, 26, 9) needs 34)."""
FALLBACK_CAP: Final = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SizingResult:
    multiplier: float
    policy: str  # MODEL | RULES | FALLBACK
    reason: str
    model_version: str | None = None

    def __post_init__(self) -> None:
        if not MULTIPLIER_MIN <= self.multiplier <= MULTIPLIER_MAX:
            raise ValueError(f"multiplier {self.multiplier} outside [{MULTIPLIER_MIN}, {MULTIPLIER_MAX}]")


def _fallback(features: Mapping[str, float], why: str, model_version: str | None) -> SizingResult:
    multiplier, rules_reason = rule_multiplier(features)
    capped = min(multiplier, FALLBACK_CAP)
    note = f" (capped at {FALLBACK_CAP:.2f})" if capped < multiplier else ""
    return SizingResult(
        multiplier=capped,
        policy="FALLBACK",
        reason=f"{why}; {rules_reason}{note}",
        model_version=model_version,
    )


def decide(signal: SignalRaised, features: Mapping[str, float], slot: PolicySlot) -> SizingResult:
    """Size ``signal`` from its ``features`` with the policy in ``slot`` (or the rules)."""
    policy = slot.current  # read once: a concurrent swap cannot split this decision
    version = policy.version if policy is not None else None
    bars = int(features.get("bars_available", 0.0))
    if bars < WARMUP_BARS:
        why = (
            f"no bars yet for {signal.symbol}"
            if bars == 0
            else f"only {bars} of {WARMUP_BARS} warm-up bars for {signal.symbol}"
        )
        return _fallback(features, f"insufficient features: {why}", version)
    if policy is None:
        multiplier, reason = rule_multiplier(features)
        return SizingResult(multiplier=multiplier, policy="RULES", reason=f"no model loaded; {reason}")
    try:
        multiplier = policy.predict(features)
    except (InferenceFailed, MissingFeature) as exc:
        return _fallback(features, f"model {policy.version} failed: {exc}", version)
    return SizingResult(
        multiplier=multiplier,
        policy="MODEL",
        reason=f"model {policy.version}: {multiplier:.2f}",
        model_version=policy.version,
    )
