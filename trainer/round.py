"""One training round, end to end.

    replay Kafka -> DuckDB (incremental)
    -> recorded history -> LoggedSignals, through the backtest's code    (skip: too few new / usable outcomes)
    -> walk-forward split: the last ``windows`` windows of whole sessions are held out
    -> train CVaR-PPO (the challenger) and the plain-PPO ablation once, on everything before them
    -> export both to ONNX (normalisation and squashing in the graph; torch vs onnxruntime compared)
    -> score the served challenger, the champion (verified from the registry), the baselines
       (fitted on the training range) and the ablation on each held-out window, exactly as
       ``rlsizer backtest`` of that window would
    -> the gate (``trainer.evaluation.gate``): evidence over the windows, no tail margin
    -> publish as ``challenger`` with a signed manifest (per-window figures in its metrics);
       promote to ``champion`` only if the gate says so
    -> HTML report with the walk-forward table, equity and tail plots per window

Every publish and promotion is announced with ``ModelPublished`` through ``events`` (default:
``models.KafkaModelEvents(settings)``). A round that raises has changed nothing it did not
finish: the registry writes are immutable versions and alias moves, in that order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agents.features import FEATURE_SET
from agents.sizing import load_policy
from agents.strategy_map import StrategyMap
from config.settings import Settings
from models import (
    CHALLENGER,
    CHAMPION,
    KafkaModelEvents,
    ManifestDraft,
    ModelEventSink,
    ModelRegistry,
    TensorSpec,
    make_version,
)
from schemas.events import utc_now
from trainer.backtest.logged_signals import NoSignals, load_logged_signals
from trainer.evaluation.baselines import Policy, ServedModel, fit_baselines
from trainer.evaluation.gate import CHAMPION as CHAMPION_POLICY
from trainer.evaluation.gate import REQUIRED_BASELINES, GateConfig, GateDecision, promotion_decision
from trainer.evaluation.metrics import PolicyMetrics
from trainer.evaluation.report import ReportContent, report_path, write_report
from trainer.evaluation.walk_forward import (
    HeldOut,
    NotEnoughSessions,
    PolicyScore,
    Window,
    format_rows,
    held_out_windows,
    metric_cells,
    pooled,
    score_window,
    table_rows,
)
from trainer.learning.cvar_ppo import TrainConfig, TrainResult, plain_ppo, train
from trainer.learning.environment import LoggedSignals
from trainer.learning.export import ExportedModel, export_policy
from trainer.warehouse.replay import Decoder, ReplayStats, replay
from trainer.warehouse.store import default_path, open_warehouse

log = logging.getLogger(__name__)

CHALLENGER_POLICY = "cvar_ppo"
ABLATION_POLICY = "plain_ppo"


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkForwardConfig:
    windows: int = 3
    """held-out windows the gate needs evidence from"""
    holdout_fraction: float = 0.3
    """share of the sessions the windows hold out together (when window_sessions is None)"""
    window_sessions: int | None = None
    """sessions per window (None: from holdout_fraction)"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundResult:
    skipped: bool
    reason: str
    outcomes: int
    """TradeClosed rows in the warehouse after the replay (what the service compares)"""
    rows: int
    """scored signals: decided signals with an outcome the backtest scores"""
    replay: ReplayStats
    warehouse_path: Path
    run_name: str = ""
    version: str | None = None
    promoted: bool = False
    parent_version: str | None = None
    table: Mapping[str, PolicyMetrics] = field(default_factory=dict)
    """metrics per policy over all held-out windows together: challenger first"""
    windows: tuple[Window, ...] = ()
    decision: GateDecision | None = None
    max_abs_diff: float | None = None
    report_path: Path | None = None


def walk_forward_rows(result: RoundResult) -> list[tuple[str, ...]]:
    """The round's walk-forward rows: every policy on every held-out window, then on all of them together."""
    if result.decision is None:
        return []
    rows = table_rows(result.windows, result.decision.windows, total=False)
    return rows + [metric_cells("all windows", name, m) for name, m in result.table.items()]


def format_walk_forward(result: RoundResult) -> str:
    """``walk_forward_rows`` as aligned text."""
    rows = walk_forward_rows(result)
    return format_rows(rows) if rows else ""


@dataclass(frozen=True, slots=True, eq=False)
class Evaluation:
    """What the gate saw: the trained models, the split and every policy's scores per held-out window."""

    version: str  # the challenger's: make_version(now, its run name)
    split: HeldOut
    challenger: TrainResult
    ablation: TrainResult
    exported: ExportedModel
    scores: tuple[dict[str, PolicyScore], ...]
    decision: GateDecision
    table: dict[str, PolicyMetrics]  # every policy over all held-out windows together


def served(exported: ExportedModel, feature_names: Sequence[str], version: str, name: str) -> ServedModel:
    """The exported model as the worker loads and serves it."""

    return ServedModel(load_policy(exported.onnx_bytes, feature_names=feature_names, version=version), name)


def evaluate_challenger(
    data: LoggedSignals,
    *,
    now: datetime,
    train_config: TrainConfig = TrainConfig(),
    walk_forward: WalkForwardConfig = WalkForwardConfig(),
    gate_config: GateConfig = GateConfig(),
    champion: Policy | None = None,
    champion_problem: str | None = None,
    feature_set: str = "fs1",
    progress: bool = False,
) -> Evaluation:
    """Split, train, export and score, then the gate (no Kafka, no registry): the round's decision."""
    split = held_out_windows(
        data,
        windows=walk_forward.windows,
        window_sessions=walk_forward.window_sessions,
        holdout_fraction=walk_forward.holdout_fraction,
    )
    train_window = split.train(data)
    log.info(
        "training on %d signals, %d held-out windows: %s",
        len(train_window),
        len(split.windows),
        ", ".join(w.label() for w in split.windows),
    )
    challenger = train(train_window, train_config, progress=progress)
    ablation = train(train_window, plain_ppo(train_config), progress=progress)
    version = make_version(now, challenger.run_name)
    exported = export_policy(
        challenger.model,
        feature_names=data.feature_names,
        feature_set=feature_set,
        eval_features=data.features,
        run_name=challenger.run_name,
    )
    ablation_exported = export_policy(
        ablation.model,
        feature_names=data.feature_names,
        feature_set=feature_set,
        eval_features=data.features,
        run_name=ablation.run_name,
    )
    policies: list[Policy] = [served(exported, data.feature_names, version, CHALLENGER_POLICY)]
    if champion is not None:
        policies.append(champion)
    policies += [
        *fit_baselines(train_window),
        served(ablation_exported, data.feature_names, ablation.run_name, ABLATION_POLICY),
    ]
    scores = tuple(
        score_window(data.window(w.start, w.end), policies, n_boot=gate_config.n_boot // 2, seed=gate_config.seed)
        for w in split.windows
    )
    required = ([CHAMPION_POLICY] if champion is not None or champion_problem else []) + list(REQUIRED_BASELINES)
    decision = promotion_decision(
        scores, challenger=CHALLENGER_POLICY, required=required, config=gate_config, champion_problem=champion_problem
    )
    log.info("%s", decision.reason)
    table = {name: pooled(scores, name) for name in scores[0]}
    return Evaluation(
        version=version,
        split=split,
        challenger=challenger,
        ablation=ablation,
        exported=exported,
        scores=scores,
        decision=decision,
        table=table,
    )


@dataclass(frozen=True, slots=True)
class _Champion:
    version: str | None
    policy: Policy | None
    problem: str | None


def _champion(registry: ModelRegistry) -> _Champion:
    """The current champion as the worker serves it, verified; a problem string instead if it cannot be scored."""
    version = registry.champion()
    if version is None:
        return _Champion(None, None, None)
    try:
        artifact, manifest = registry.fetch_verified(version)
        model = load_policy(artifact, feature_names=manifest.feature_names, version=version)
        return _Champion(version, ServedModel(model, CHAMPION_POLICY), None)
    except Exception as exc:  # verification, load or contract errors: all block promotion alike
        log.warning("champion %s cannot be scored: %s", version, exc)
        return _Champion(version, None, f"{type(exc).__name__}: {exc}")


def _utc(ts: np.datetime64) -> datetime:
    at: datetime = ts.astype("datetime64[us]").astype(datetime)
    return at.replace(tzinfo=UTC)


def manifest_metrics(ev: Evaluation, n_train: int) -> dict[str, float]:
    """Flat float metrics for the manifest: pooled held-out figures, the gate's numbers, and per window
    ``wf<k>_*`` (window bounds as epoch seconds, each policy's return and session CVaR5)."""
    table = ev.table
    ch = table[CHALLENGER_POLICY]
    metrics: dict[str, float] = {
        "holdout_return": ch.total_return,
        "holdout_sharpe": ch.sharpe_per_trade,
        "holdout_max_drawdown": ch.max_drawdown,
        "holdout_cvar5": ch.cvar_5,
        "holdout_session_cvar5": ch.session_cvar_5,
        "holdout_return_to_session_cvar": ch.return_to_session_cvar,
        "holdout_mean_multiplier": ch.mean_multiplier or 0.0,
        "holdout_trades": float(ch.n_trades),
        "holdout_sessions": float(ch.n_sessions),
        "train_trades": float(n_train),
        "max_abs_diff": ev.exported.max_abs_diff,
        "gate_promote": 1.0 if ev.decision.promote else 0.0,
        "gate_windows": float(len(ev.scores)),
    }
    for name, m in table.items():
        if name != CHALLENGER_POLICY:
            metrics[f"ref_{name}_holdout_return"] = m.total_return
            metrics[f"ref_{name}_holdout_session_cvar5"] = m.session_cvar_5
    for c in ev.decision.comparisons:
        metrics[f"gate_vs_{c.reference}_return_diff_lower"] = c.return_diff_lower
        metrics[f"gate_vs_{c.reference}_session_cvar_diff_lower"] = c.tail_diff_lower
        metrics[f"gate_vs_{c.reference}_windows_not_worse"] = float(c.windows_not_worse)
        metrics[f"gate_vs_{c.reference}_passed"] = 1.0 if c.passed else 0.0
        metrics[f"gate_vs_{c.reference}_required"] = 1.0 if c.required else 0.0
    for window, scores in zip(ev.split.windows, ev.scores, strict=True):
        key = f"wf{window.index}"
        metrics[f"{key}_from_s"] = window.start.timestamp()
        metrics[f"{key}_to_s"] = window.end.timestamp()
        metrics[f"{key}_sessions"] = float(window.n_sessions)
        for name, score in scores.items():
            prefix = key if name == CHALLENGER_POLICY else f"{key}_{name}"
            metrics[f"{prefix}_return"] = score.metrics.total_return
            metrics[f"{prefix}_session_cvar5"] = score.metrics.session_cvar_5
        metrics[f"{key}_mean_multiplier"] = scores[CHALLENGER_POLICY].metrics.mean_multiplier or 0.0
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}


def _specs(raw: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name=s["name"], dtype=s["dtype"], shape=tuple(s["shape"])) for s in raw)


def run_round(
    settings: Settings,
    *,
    codec: Decoder,
    registry: ModelRegistry,
    train_config: TrainConfig = TrainConfig(),
    min_outcomes: int = 200,
    progress: bool = False,
    now: datetime | None = None,
    since_outcomes: int = 0,
    min_new_outcomes: int = 0,
    gate_config: GateConfig = GateConfig(),
    walk_forward: WalkForwardConfig = WalkForwardConfig(),
    feature_set: str | None = None,
    events: ModelEventSink | None = None,
    warehouse_path: Path | None = None,
) -> RoundResult:
    """Run one round (module docstring). Skips, with the reason, when there is not enough new data.

    ``since_outcomes``/``min_new_outcomes``: skip unless the warehouse holds at least
    ``min_new_outcomes`` more TradeClosed rows than ``since_outcomes`` (the service passes the
    count at its last successful round). ``min_outcomes``: scored signals needed to train at all.
    """

    now = now or utc_now()
    path = Path(warehouse_path) if warehouse_path is not None else default_path(settings.data_dir)
    stats = replay(settings, codec, warehouse_path=path, progress=progress)
    with open_warehouse(path) as warehouse:
        outcomes = warehouse.count("outcomes")
        try:
            data: LoggedSignals | None = load_logged_signals(
                warehouse.cursor(), StrategyMap.from_spec(settings.strategy_map)
            )
        except NoSignals:
            data = None
    rows = int(data.scored.sum()) if data is not None else 0
    round_result = partial(RoundResult, outcomes=outcomes, rows=rows, replay=stats, warehouse_path=path)
    new = outcomes - since_outcomes
    if new < min_new_outcomes:
        return round_result(
            skipped=True,
            reason=f"skipped: {new} new outcomes since the last successful round (needs {min_new_outcomes})",
        )
    if feature_set not in (None, FEATURE_SET):
        return round_result(
            skipped=True, reason=f"skipped: this code computes feature set {FEATURE_SET}, not {feature_set}"
        )
    if data is None or rows < min_outcomes:
        return round_result(skipped=True, reason=f"skipped: {rows} scored signals (needs {min_outcomes})")

    champion = _champion(registry)
    try:
        ev = evaluate_challenger(
            data,
            now=now,
            train_config=train_config,
            walk_forward=walk_forward,
            gate_config=gate_config,
            champion=champion.policy,
            champion_problem=champion.problem,
            feature_set=FEATURE_SET,
            progress=progress,
        )
    except NotEnoughSessions as exc:
        return round_result(skipped=True, reason=f"skipped: {exc}")
    version = ev.version
    decision = ev.decision
    n_train = int(ev.split.train(data).scored.sum())
    draft = ManifestDraft(
        feature_set=FEATURE_SET,
        feature_names=data.feature_names,
        inputs=_specs(ev.exported.metadata["inputs"]),
        outputs=_specs(ev.exported.metadata["outputs"]),
        metrics=manifest_metrics(ev, n_train),
        data_from=_utc(data.ts.min()),
        data_to=_utc(data.ts.max()),
        run_name=ev.challenger.run_name,
        parent_version=champion.version,
    )
    if events is None:
        events = KafkaModelEvents(settings)
    published = registry.publish(
        ev.exported.onnx_bytes, draft, alias=CHALLENGER, version=version, created_at=now, on_published=events
    )
    if decision.promote:
        registry.promote(published.manifest.version)
        events(registry.alias_event(CHAMPION, published.manifest.version))
        log.info("promoted %s to champion (parent %s)", version, champion.version)

    report = write_report(
        _report_content(now, version, ev, data, champion.version), report_path(settings.data_dir, version)
    )
    return round_result(
        skipped=False,
        reason=decision.reason,
        run_name=ev.challenger.run_name,
        version=version,
        promoted=decision.promote,
        parent_version=champion.version,
        table=ev.table,
        windows=ev.split.windows,
        decision=decision,
        max_abs_diff=ev.exported.max_abs_diff,
        report_path=report,
    )


def _report_content(
    now: datetime, version: str, ev: Evaluation, data: LoggedSignals, parent: str | None
) -> ReportContent:
    train_window = ev.split.train(data)
    facts = {
        "version": version,
        "run name": ev.challenger.run_name,
        "parent (champion at training time)": parent or "none",
        "data": f"{_utc(data.ts.min()):%Y-%m-%d %H:%M} .. {_utc(data.ts.max()):%Y-%m-%d %H:%M} UTC, {len(data)} signals",
        "training range": f"before {ev.split.train_end:%Y-%m-%d}: {int(train_window.scored.sum())} scored signals, "
        f"{np.unique(train_window.episode_id).size} sessions",
        "held-out windows": "; ".join(f"{w.label()} ({w.n_sessions} sessions)" for w in ev.split.windows),
        "max |torch - onnxruntime|": f"{ev.exported.max_abs_diff:.2e}",
        "config": repr(ev.challenger.config),
    }
    return ReportContent(
        title=f"rlsizer training round {version}",
        created_at=now,
        decision=ev.decision,
        windows=ev.split.windows,
        histories={CHALLENGER_POLICY: ev.challenger.history, ABLATION_POLICY: ev.ablation.history},
        facts=facts,
    )
