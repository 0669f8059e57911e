"""Backtests by replay: recorded inputs re-sized by any policy through the worker's own code.

``run_policy`` replays ``trainer.backtest.events.History`` -- the inputs the worker
applied, in the order it applied them -- through the functions the worker advances a
symbol's book with (``agents.book``: bars, decisions, fills to ``TradeClosed``, account
and strategy history). Signals before the window only rebuild state, with the decision
recorded live (so the account at the window start is the live one); signals in the
window are sized by the policy under test, and its decisions feed its own account state
(open risk, session P&L in R x its multipliers), exactly as they would live.

A size multiplier scales position and risk alike, so a trade's R does not depend on it:
a policy's reward for a trade is ``m * (R - cost_R)``, with R from the recorded
``TradeClosed`` and cost_R = fees / (risk per unit x qty) as in ``trainer.warehouse.dataset``.
Signals without a recorded outcome (not filled, still open) are sized but not scored.

Policies (``PolicySpec``): ``fixed`` (1.0 on every signal), ``rules`` (an empty
``PolicySlot``: the worker's rules and fallback), a model version verified from the
registry (``model_policy``), or ``live`` (``live_policy``: each signal sized by the
policy that decided it live -- the rules, or the model version its decision names --
which is what the parity check compares). Everything is a function of the warehouse
content: the same inputs give the same numbers (``now`` is the signal's own ``ts_event``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from agents.book import SymbolBook, signal_features, sized, with_bar, with_decision, with_fill
from agents.features import FEATURE_SET, BarRejected
from agents.outcomes import OutcomeRejected
from agents.sizing import PolicySlot, load_policy
from agents.strategy_map import StrategyMap, UnknownStrategy
from schemas.events import BarClosed, FeaturesComputed, OrderFilled, SignalRaised, SizeDecided, TradeClosed
from trainer.backtest.events import History
from trainer.evaluation.metrics import PolicyMetrics, policy_metrics


class BacktestError(RuntimeError):
    """A backtest cannot run: unknown policy, unverifiable model, empty window."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySpec:
    """One policy to replay: a fixed multiplier, a slot (empty = rules, else a model), or a slot per signal."""

    name: str
    slot: PolicySlot | None = None
    fixed: float | None = None
    slot_for: Callable[[SizeDecided | None], PolicySlot] | None = None  # by the signal's live decision

    @property
    def model_version(self) -> str | None:
        policy = self.slot.current if self.slot is not None else None
        return policy.version if policy is not None else None


def fixed_policy(multiplier: float = 1.0, name: str = "fixed") -> PolicySpec:
    return PolicySpec(name=name, fixed=multiplier)


def rules_policy(name: str = "rules") -> PolicySpec:
    return PolicySpec(name=name, slot=PolicySlot())


def model_policy(registry: Any, version: str, name: str | None = None) -> PolicySpec:
    """``version`` from a ``models.ModelRegistry``, verified (signature, checksum) before it is used."""
    return PolicySpec(name=name or version, slot=PolicySlot(_verified_model(registry, version)))


def live_policy(registry: Any | None, name: str = "live") -> PolicySpec:
    """Each signal sized by the policy that decided it live: its decision's model version, else the rules.

    Models are fetched verified from ``registry`` once each; without a registry, a
    model-decided signal raises ``BacktestError``.
    """
    rules = PolicySlot()
    models: dict[str, PolicySlot] = {}

    def slot_for(decision: SizeDecided | None) -> PolicySlot:
        if decision is None or not decision.model_version:
            return rules
        version = decision.model_version
        if version not in models:
            if registry is None:
                raise BacktestError(
                    f"signal {decision.signal_id} was decided by model {version}: a registry is needed to replay it"
                )
            models[version] = PolicySlot(_verified_model(registry, version))
        return models[version]

    return PolicySpec(name=name, slot_for=slot_for)


def _verified_model(registry: Any, version: str) -> Any:

    try:
        artifact, manifest = registry.fetch_verified(version)
    except Exception as exc:  # VersionNotFound, ModelVerificationError, S3 errors: one message
        raise BacktestError(f"model {version}: cannot fetch a verified copy from the registry: {exc}") from exc
    if manifest.feature_set != FEATURE_SET:
        raise BacktestError(
            f"model {version} was trained on feature set {manifest.feature_set!r}; this code computes {FEATURE_SET!r}"
        )
    return load_policy(artifact, feature_names=manifest.feature_names, version=manifest.version)


# -- the replay ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class PolicyRun:
    """What one policy did in the window: one row per decided signal, in decision order."""

    name: str
    model_version: str | None
    signal_ids: tuple[str, ...]
    ts: np.ndarray  # datetime64[us]
    symbol: np.ndarray  # str
    strategy_id: np.ndarray  # str
    family: np.ndarray  # str
    multiplier: npt.NDArray[np.float64]
    policy_used: np.ndarray  # str: MODEL / RULES / FALLBACK / FIXED
    decided_by: np.ndarray  # str or None: the model version of each decision
    r_multiple: npt.NDArray[np.float64]  # NaN without an outcome
    cost_r: npt.NDArray[np.float64]  # NaN without an outcome
    features: Mapping[str, FeaturesComputed]
    skipped: Mapping[str, int]  # why events were not applied, e.g. duplicate bars
    as_recorded: bool = False  # each signal sized by the policy that decided it live (``live_policy``)

    @property
    def scored(self) -> np.ndarray:
        return np.isfinite(self.r_multiple) & np.isfinite(self.cost_r)

    @property
    def reward(self) -> np.ndarray:
        """Per decided signal: ``m * (R - cost_R)``; NaN where there is no outcome."""
        return self.multiplier * (self.r_multiple - self.cost_r)


def cost_in_r(signal: SignalRaised, trade: TradeClosed) -> float:
    risk = abs(trade.entry_price - signal.stop_price) if signal.stop_price is not None else math.nan
    if not (math.isfinite(risk) and risk > 0):
        risk = signal.atr
    denom = risk * trade.qty
    return trade.fees / denom if math.isfinite(denom) and denom > 0 else math.nan


def run_policy(history: History, spec: PolicySpec, strategy_map: StrategyMap) -> PolicyRun:
    """Replay ``history`` with ``spec`` sizing the window's signals (see the module doc)."""
    books: dict[str, SymbolBook] = {}
    signals: dict[str, SignalRaised] = {}  # decided, by signal_id: entry fills open their trades
    closed: set[str] = set()
    skipped: dict[str, int] = {}
    rows: list[tuple[SignalRaised, SizeDecided, str]] = []
    features: dict[str, FeaturesComputed] = {}
    default_slot = spec.slot if spec.slot is not None else PolicySlot()

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    for ev in history.events:
        book = books.get(ev.symbol) or SymbolBook.empty(ev.symbol)
        if isinstance(ev, BarClosed):
            try:
                books[ev.symbol] = with_bar(book, ev)
            except BarRejected as exc:
                skip(f"bar {exc.kind}")
        elif isinstance(ev, OrderFilled):
            try:
                books[ev.symbol], outcome = with_fill(
                    book, ev, signal=signals.get(ev.signal_id), closed=ev.signal_id in closed, now=ev.ts_event
                )
            except OutcomeRejected as exc:
                skip(f"fill {exc.kind}")
                continue
            if outcome is not None:
                closed.add(ev.signal_id)
        else:
            if ev.signal_id in signals:
                skip("duplicate signal")
                continue
            recorded = history.decisions.get(ev.signal_id)
            if ev.signal_id not in history.window_ids:  # warm-up: the decision made live
                if recorded is not None:
                    signals[ev.signal_id] = ev
                    books[ev.symbol] = with_decision(book, recorded)
                continue
            try:
                computed = signal_features(book, ev, strategy_map=strategy_map, now=ev.ts_event)
            except UnknownStrategy:
                skip("unknown strategy")
                continue
            slot = spec.slot_for(recorded) if spec.slot_for is not None else default_slot
            decided = sized(ev, computed, slot)
            used = decided.policy
            if spec.fixed is not None:
                decided = replace(decided, multiplier=spec.fixed, qty=ev.base_qty * spec.fixed)
                used = "FIXED"
            signals[ev.signal_id] = ev
            books[ev.symbol] = with_decision(book, decided)
            features[ev.signal_id] = computed
            rows.append((ev, decided, used))
    return _policy_run(spec, rows, features, history.outcomes, skipped)


def _policy_run(
    spec: PolicySpec,
    rows: list[tuple[SignalRaised, SizeDecided, str]],
    features: dict[str, FeaturesComputed],
    outcomes: Mapping[str, TradeClosed],
    skipped: dict[str, int],
) -> PolicyRun:
    r = np.full(len(rows), np.nan)
    c = np.full(len(rows), np.nan)
    for i, (sig, _, _) in enumerate(rows):
        trade = outcomes.get(sig.signal_id)
        if trade is not None and trade.ts_event > sig.ts_event:
            r[i], c[i] = float(trade.r_multiple), cost_in_r(sig, trade)
    return PolicyRun(
        name=spec.name,
        model_version=spec.model_version,
        signal_ids=tuple(s.signal_id for s, _, _ in rows),
        ts=np.array([s.ts_event.replace(tzinfo=None) for s, _, _ in rows], dtype="datetime64[us]"),
        symbol=np.array([s.symbol for s, _, _ in rows], dtype=object),
        strategy_id=np.array([s.strategy_id for s, _, _ in rows], dtype=object),
        family=np.array([features[s.signal_id].strategy_type for s, _, _ in rows], dtype=object),
        multiplier=np.array([d.multiplier for _, d, _ in rows], dtype=np.float64),
        policy_used=np.array([u for _, _, u in rows], dtype=object),
        decided_by=np.array([d.model_version for _, d, _ in rows], dtype=object),
        as_recorded=spec.slot_for is not None,
        r_multiple=r,
        cost_r=c,
        features=MappingProxyType(features),
        skipped=MappingProxyType(dict(sorted(skipped.items()))),
    )


# -- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class PolicyResult:
    run: PolicyRun
    overall: PolicyMetrics | None  # None: no scored trade in the window
    by_family: Mapping[str, PolicyMetrics]


def measure(run: PolicyRun, *, n_boot: int = 500, seed: int = 0) -> PolicyResult:
    """Metrics of the scored trades, overall and per strategy family (seeded bootstrap)."""
    mask = run.scored

    def metrics(m: np.ndarray) -> PolicyMetrics | None:
        if not m.any():
            return None
        return policy_metrics(run.reward[m], ts=run.ts[m], multipliers=run.multiplier[m], n_boot=n_boot, seed=seed)

    by_family = {}
    for fam in sorted(set(run.family[mask])):
        found = metrics(mask & (run.family == fam))
        if found is not None:
            by_family[str(fam)] = found
    return PolicyResult(run=run, overall=metrics(mask), by_family=MappingProxyType(by_family))


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    start: Any
    end: Any
    results: tuple[PolicyResult, ...]


def backtest(
    history: History, policies: Sequence[PolicySpec], strategy_map: StrategyMap, *, n_boot: int = 500
) -> BacktestResult:
    if not policies:
        raise BacktestError("no policy to backtest")
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise BacktestError(f"policy names must be distinct, got {names}")
    results = tuple(measure(run_policy(history, p, strategy_map), n_boot=n_boot) for p in policies)
    return BacktestResult(start=history.start, end=history.end, results=results)
