"""One training round, end to end.

    replay Kafka -> DuckDB (incremental)
    -> point-in-time dataset -> LoggedSignals            (skip: too few new / usable outcomes)
    -> walk-forward split (whole sessions, by time)
    -> train CVaR-PPO (the challenger) and the plain-PPO ablation on the training window
    -> score challenger, champion (verified from the registry), baselines, ablation on the held-out window
    -> gate (trainer.gate) + the production promotion rule (trainer.holdout)
    -> export ONNX (normalisation and squashing in the graph; torch vs onnxruntime compared)
    -> publish as ``challenger`` with a signed manifest; promote to ``champion`` only if the rule says so
    -> HTML report

Every publish and promotion is announced with ``ModelPublished`` through ``events`` (default:
``models.KafkaModelEvents(settings)``). A round that raises has changed nothing it did not
finish: the registry writes are immutable versions and alias moves, in that order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from models import CHALLENGER, CHAMPION, ManifestDraft, ModelEventSink, ModelRegistry, TensorSpec, make_version
from schemas.events import utc_now
from streams.settings import Settings
from trainer.baselines import ModelPolicy, Policy, fit_baselines
from trainer.cvar_ppo import TrainConfig, TrainResult, train
from trainer.dataset import load_dataset
from trainer.environment import LoggedSignals
from trainer.export import ExportedModel, export_policy
from trainer.gate import GateConfig, GateDecision, promotion_decision, walk_forward_split
from trainer.holdout import CHAMPION as CHAMPION_POLICY
from trainer.holdout import REQUIRED_BASELINES, OnnxModelPolicy, PolicyRun, Verdict, promotion_verdict, score_policies
from trainer.logged_signals import neutral_values, served_feature_names, to_logged_signals
from trainer.metrics import PolicyMetrics
from trainer.replay import Decoder, ReplayStats, replay
from trainer.report import ReportContent, report_path, write_report
from trainer.warehouse import default_path, open_warehouse

log = logging.getLogger(__name__)

CHALLENGER_POLICY = "cvar_ppo"
ABLATION_POLICY = "plain_ppo"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundResult:
    skipped: bool
    reason: str
    outcomes: int
    """TradeClosed rows in the warehouse after the replay (what the service compares)"""
    rows: int
    """usable point-in-time rows (decided signals with features, signal and outcome)"""
    replay: ReplayStats
    warehouse_path: Path
    run_name: str = ""
    version: str | None = None
    promoted: bool = False
    parent_version: str | None = None
    table: Mapping[str, PolicyMetrics] = field(default_factory=dict)
    """held-out metrics per policy: challenger first, then champion, baselines, ablation"""
    decision: GateDecision | None = None
    verdict: Verdict | None = None
    max_abs_diff: float | None = None
    report_path: Path | None = None


@dataclass(frozen=True, slots=True)
class _Champion:
    version: str | None
    policy: Policy | None
    problem: str | None


def _champion(registry: ModelRegistry) -> _Champion:
    """The current champion as a policy, verified; a problem string instead if it cannot be scored."""
    version = registry.champion()
    if version is None:
        return _Champion(None, None, None)
    try:
        from agents.sizing import OnnxPolicy  # pure module: onnxruntime, schemas

        artifact, manifest = registry.fetch_verified(version)
        model = OnnxPolicy(artifact, feature_names=manifest.feature_names, version=version)
        return _Champion(version, OnnxModelPolicy(model, tuple(manifest.feature_names), CHAMPION_POLICY), None)
    except Exception as exc:  # verification, load or contract errors: all block promotion alike
        log.warning("champion %s cannot be scored: %s", version, exc)
        return _Champion(version, None, f"{type(exc).__name__}: {exc}")


def _utc(ts: np.datetime64) -> datetime:
    return np.datetime64(ts, "us").astype(datetime).replace(tzinfo=timezone.utc)


def _manifest_metrics(table: Mapping[str, PolicyMetrics], decision: GateDecision, verdict: Verdict, exported: ExportedModel,
                      n_train: int, n_holdout: int) -> dict[str, float]:
    ch = table[CHALLENGER_POLICY]
    metrics = {
        "holdout_return": ch.total_return,
        "holdout_sharpe": ch.sharpe_per_trade,
        "holdout_max_drawdown": ch.max_drawdown,
        "holdout_cvar5": ch.cvar_5,
        "holdout_hit_rate": ch.hit_rate,
        "holdout_mean_multiplier": ch.mean_multiplier or 0.0,
        "holdout_trades": float(n_holdout),
        "train_trades": float(n_train),
        "max_abs_diff": exported.max_abs_diff,
        "gate_promote": 1.0 if verdict.promote else 0.0,
    }
    for name, m in table.items():
        if name != CHALLENGER_POLICY:
            metrics[f"ref_{name}_holdout_return"] = m.total_return
            metrics[f"ref_{name}_holdout_cvar5"] = m.cvar_5
    for c in decision.comparisons:
        metrics[f"gate_vs_{c.reference}_return_diff_lower"] = c.return_diff_lower
        metrics[f"gate_vs_{c.reference}_cvar_diff_lower"] = c.cvar_diff_lower
        metrics[f"gate_vs_{c.reference}_passed"] = 1.0 if c.passed else 0.0
        metrics[f"gate_vs_{c.reference}_required"] = 1.0 if c.reference in verdict.required else 0.0
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
    holdout_fraction: float = 0.25,
    feature_set: str | None = None,
    events: ModelEventSink | None = None,
    warehouse_path: Path | None = None,
) -> RoundResult:
    """Run one round (module docstring). Skips, with the reason, when there is not enough new data.

    ``since_outcomes``/``min_new_outcomes``: skip unless the warehouse holds at least
    ``min_new_outcomes`` more TradeClosed rows than ``since_outcomes`` (the service passes the
    count at its last successful round). ``min_outcomes``: usable rows needed to train at all.
    """
    from agents.features import FEATURE_SET

    now = now or utc_now()
    feature_set = feature_set or FEATURE_SET
    path = Path(warehouse_path) if warehouse_path is not None else default_path(settings.data_dir)
    stats = replay(settings, codec, warehouse_path=path, progress=progress)
    with open_warehouse(path) as warehouse:
        outcomes = warehouse.count("outcomes")
        rows = load_dataset(warehouse.cursor(), feature_names=served_feature_names(feature_set), feature_set=feature_set)
    base = dict(outcomes=outcomes, rows=len(rows), replay=stats, warehouse_path=path)
    new = outcomes - since_outcomes
    if new < min_new_outcomes:
        reason = f"skipped: {new} new outcomes since the last successful round (needs {min_new_outcomes})"
        return RoundResult(skipped=True, reason=reason, **base)
    if len(rows) < min_outcomes:
        reason = f"skipped: {len(rows)} usable outcomes with {feature_set} features (needs {min_outcomes})"
        return RoundResult(skipped=True, reason=reason, **base)

    data = to_logged_signals(rows, neutral=neutral_values(feature_set))
    train_window, holdout = walk_forward_split(data, holdout_fraction=holdout_fraction)
    log.info("training on %d trades, holding out %d", len(train_window), len(holdout))
    challenger = train(train_window, train_config, progress=progress)
    ablation = train(train_window, replace(train_config, cvar_enabled=False), progress=progress)

    champion = _champion(registry)
    policies: list[Policy] = [ModelPolicy(challenger.model, CHALLENGER_POLICY)]
    if champion.policy is not None:
        policies.append(champion.policy)
    policies += [*fit_baselines(train_window), ModelPolicy(ablation.model, ABLATION_POLICY)]
    runs, stand_ins = score_policies(holdout, policies)
    references = {p.name: p for p in stand_ins[1:]}
    champion_ref = references.pop(CHAMPION_POLICY, None)
    decision = promotion_decision(holdout, stand_ins[0], list(references.values()), champion_ref, gate_config)
    required = ([CHAMPION_POLICY] if champion.version else []) + list(REQUIRED_BASELINES)
    verdict = promotion_verdict(decision, required=required, champion_problem=champion.problem)
    log.info("%s", verdict.reason)

    exported = export_policy(challenger.model, feature_names=data.feature_names, feature_set=feature_set,
                             eval_features=data.features, run_name=challenger.run_name)
    table = {name: decision.table[name] for name in runs}
    draft = ManifestDraft(
        feature_set=feature_set,
        feature_names=data.feature_names,
        inputs=_specs(exported.metadata["inputs"]),
        outputs=_specs(exported.metadata["outputs"]),
        metrics=_manifest_metrics(table, decision, verdict, exported, len(train_window), len(holdout)),
        data_from=_utc(data.ts.min()),
        data_to=_utc(data.ts.max()),
        run_name=challenger.run_name,
        parent_version=champion.version,
    )
    if events is None:
        from models import KafkaModelEvents

        events = KafkaModelEvents(settings)
    version = make_version(now, challenger.run_name)
    published = registry.publish(exported.onnx_bytes, draft, alias=CHALLENGER, version=version, created_at=now, on_published=events)
    if verdict.promote:
        registry.promote(published.manifest.version)
        events(registry.alias_event(CHAMPION, published.manifest.version))
        log.info("promoted %s to champion (parent %s)", version, champion.version)

    report = write_report(
        _report_content(now, version, challenger, ablation, verdict, decision, table, runs, exported, data, train_window, holdout, champion.version),
        report_path(settings.data_dir, version),
    )
    return RoundResult(
        skipped=False, reason=verdict.reason, **base, run_name=challenger.run_name, version=version, promoted=verdict.promote,
        parent_version=champion.version, table=table, decision=decision, verdict=verdict, max_abs_diff=exported.max_abs_diff,
        report_path=report,
    )


def _report_content(now: datetime, version: str, challenger: TrainResult, ablation: TrainResult, verdict: Verdict,
                    decision: GateDecision, table: Mapping[str, PolicyMetrics], runs: Mapping[str, PolicyRun],
                    exported: ExportedModel, data: LoggedSignals, train_window: LoggedSignals, holdout: LoggedSignals,
                    parent: str | None) -> ReportContent:
    facts = {
        "version": version,
        "run name": challenger.run_name,
        "parent (champion at training time)": parent or "none",
        "data": f"{_utc(data.ts.min()):%Y-%m-%d %H:%M} .. {_utc(data.ts.max()):%Y-%m-%d %H:%M} UTC, {len(data)} trades",
        "training window": f"{len(train_window)} trades, {np.unique(train_window.episode_id).size} sessions",
        "held-out window": f"{len(holdout)} trades, {np.unique(holdout.episode_id).size} sessions",
        "max |torch - onnxruntime|": f"{exported.max_abs_diff:.2e}",
        "config": repr(challenger.config),
    }
    return ReportContent(
        title=f"rlsizer training round {version}",
        created_at=now,
        verdict=verdict,
        table=table,
        comparisons=decision.comparisons,
        runs=runs,
        histories={CHALLENGER_POLICY: challenger.history, ABLATION_POLICY: ablation.history},
        facts=facts,
    )
