"""Walk-forward evaluation: training rounds rolled forward over the recorded history, measured on data they never saw.

Each step (``trainer.evaluation.walk_forward.rolling_steps``) is one simulated training round: CVaR-PPO and
the plain-PPO ablation are trained on the sessions before the step's gate windows, exported to
ONNX and served as the worker serves them; the baselines (fixed 1x, the rules, half-Kelly,
volatility targeting) are fitted on the same range; every policy is scored on the gate windows
and the gate decides (``trainer.evaluation.gate``, required: fixed 1x and the rules). Then every policy is
scored on the *next* window, which nothing in the step saw: that is the step's row of the
walk-forward table, and ``gated`` is what would have served it (the model if the gate promoted
it, else the rules), i.e. what the gate's verdict earned.

Everything is replayed with live's account model (``trainer.learning.environment``) and is a function of
the recorded history and the seeds.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agents.sizing import load_policy
from trainer.evaluation.baselines import Policy, ServedModel, fit_baselines
from trainer.evaluation.gate import REQUIRED_BASELINES, GateConfig, GateDecision, promotion_decision
from trainer.evaluation.metrics import PolicyMetrics
from trainer.evaluation.walk_forward import PolicyScore, Step, metric_cells, pooled, rolling_steps, score_window
from trainer.learning.cvar_ppo import TrainConfig, plain_ppo, train
from trainer.learning.environment import LoggedSignals
from trainer.learning.export import export_policy
from trainer.learning.policy_net import SizingAgent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CVAR_PPO = "cvar_ppo"
PLAIN_PPO = "plain_ppo"
GATED = "gated"
POLICIES = (CVAR_PPO, PLAIN_PPO, "fixed_1x", "rules", "half_kelly", "vol_target")


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluateConfig:
    steps: int = 4
    """rounds rolled forward (each measured on the window after its gate windows)"""
    gate_windows: int = 2
    """held-out windows each round's gate reads"""
    window_sessions: int | None = None
    """sessions per window (None: the last holdout_fraction of sessions shared by steps + gate_windows windows)"""
    holdout_fraction: float = 0.5
    train_sessions: int | None = None
    """sessions each round trains on (None: all before its gate windows, an expanding window)"""
    min_train_sessions: int = 20


@dataclass(frozen=True, slots=True, eq=False)
class StepResult:
    step: Step
    decision: GateDecision
    next_scores: dict[str, PolicyScore]  # every policy and ``gated`` on the next window
    served: str  # CVAR_PPO when the gate promoted, else "rules"
    train_signals: int
    train_history: tuple[dict[str, float], ...]


@dataclass(frozen=True, slots=True, eq=False)
class WalkForward:
    config: EvaluateConfig
    train_config: TrainConfig
    steps: tuple[StepResult, ...]

    def pooled(self, name: str) -> PolicyMetrics:
        return pooled([s.next_scores for s in self.steps], name)

    @property
    def promotions(self) -> int:
        return sum(1 for s in self.steps if s.decision.promote)


def _served_model(model: SizingAgent, data: LoggedSignals, run_name: str, name: str) -> Policy:

    exported = export_policy(
        model,
        feature_names=data.feature_names,
        feature_set="eval",
        eval_features=data.features[: min(len(data), 2000)],
        run_name=run_name,
    )
    return ServedModel(load_policy(exported.onnx_bytes, feature_names=data.feature_names, version=run_name), name)


@dataclass(frozen=True, slots=True)
class _Gated:
    """What serves after the gate: the model if it was promoted, else the rules (the same replay as theirs)."""

    chosen: Policy
    name: str = GATED

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return self.chosen.multipliers(data)


def run_step(
    data: LoggedSignals, step: Step, train_config: TrainConfig, gate_config: GateConfig, *, progress: bool = False
) -> StepResult:
    """Train, gate and measure one step (module docstring)."""
    train_window = step.train(data)
    cvar = train(train_window, train_config, progress=progress)
    plain = train(train_window, plain_ppo(train_config), progress=progress)
    policies: list[Policy] = [
        _served_model(cvar.model, data, cvar.run_name, CVAR_PPO),
        *fit_baselines(train_window),
        _served_model(plain.model, data, plain.run_name, PLAIN_PPO),
    ]
    gate_scores = [
        score_window(data.window(w.start, w.end), policies, n_boot=gate_config.n_boot // 2, seed=gate_config.seed)
        for w in step.gate
    ]
    decision = promotion_decision(gate_scores, challenger=CVAR_PPO, required=REQUIRED_BASELINES, config=gate_config)
    by_name = {p.name: p for p in policies}
    served = CVAR_PPO if decision.promote else "rules"
    ordered: list[Policy] = [*(by_name[n] for n in POLICIES), _Gated(by_name[served])]
    next_scores = score_window(
        data.window(step.next.start, step.next.end), ordered, n_boot=gate_config.n_boot // 2, seed=gate_config.seed
    )
    return StepResult(
        step=step,
        decision=decision,
        next_scores=next_scores,
        served=served,
        train_signals=int(train_window.scored.sum()),
        train_history=cvar.history,
    )


def walk_forward(
    data: LoggedSignals,
    config: EvaluateConfig = EvaluateConfig(),
    train_config: TrainConfig = TrainConfig(),
    gate_config: GateConfig = GateConfig(),
    *,
    progress: bool = False,
    on_step: Callable[[StepResult], None] | None = None,
) -> WalkForward:
    """Every step of ``rolling_steps`` in turn (a progress bar over steps when ``progress``)."""
    from tqdm import tqdm  # lazy: loads tqdm only when used

    steps = rolling_steps(
        data,
        steps=config.steps,
        gate_windows=config.gate_windows,
        window_sessions=config.window_sessions,
        holdout_fraction=config.holdout_fraction,
        train_sessions=config.train_sessions,
        min_train_sessions=config.min_train_sessions,
    )
    results = []
    for step in tqdm(steps, desc="walk-forward steps", unit="step", disable=not progress):
        result = run_step(data, step, train_config, gate_config, progress=progress)
        results.append(result)
        if on_step is not None:
            on_step(result)
    return WalkForward(config=config, train_config=train_config, steps=tuple(results))


# -- tables ----------------------------------------------------------------------------------------


def step_rows(result: StepResult) -> list[tuple[str, ...]]:
    label = result.step.next.label()
    return [metric_cells(label, name, s.metrics) for name, s in result.next_scores.items()]


def aggregate_rows(wf: WalkForward) -> list[tuple[str, ...]]:
    return [metric_cells("all windows", name, wf.pooled(name)) for name in wf.steps[0].next_scores]


def verdict_line(result: StepResult) -> str:
    nxt = result.next_scores
    served, rules = nxt[GATED].metrics, nxt["rules"].metrics
    verdict = "PROMOTED" if result.decision.promote else "refused"
    return (
        f"step {result.step.index}: trained before {result.step.train_end:%Y-%m-%d} ({result.train_signals} scored signals), "
        f"gate on {', '.join(w.label() for w in result.step.gate)}: {verdict}; on {result.step.next.label()} "
        f"{result.served} served: return {served.total_return:+.2f} R, session CVaR5 {served.session_cvar_5:+.2f} R "
        f"(rules {rules.total_return:+.2f} R / {rules.session_cvar_5:+.2f} R, "
        f"cvar_ppo {nxt[CVAR_PPO].metrics.total_return:+.2f} R / {nxt[CVAR_PPO].metrics.session_cvar_5:+.2f} R)"
    )


def tail_summary(wf: WalkForward, reference: str = "fixed_1x") -> dict[str, tuple[int, int, float]]:
    """Per policy: (windows whose session CVaR5 is not worse than ``reference``'s, windows, mean ratio of the tails)."""
    out = {}
    for name in wf.steps[0].next_scores:
        tails = [
            (s.next_scores[name].metrics.session_cvar_5, s.next_scores[reference].metrics.session_cvar_5)
            for s in wf.steps
        ]
        ratios = [a / b for a, b in tails if b < 0]
        out[name] = (sum(1 for a, b in tails if a >= b), len(tails), float(np.mean(ratios)) if ratios else float("nan"))
    return out


# -- report ----------------------------------------------------------------------------------------


def render_html(wf: WalkForward, *, title: str, facts: dict[str, str]) -> str:
    """The walk-forward report: the table, then per window the gate's verdict, equity and session tail."""

    from trainer.evaluation.report import (  # lazy: loads matplotlib only when used
        image,
        page,
        table_html,
        training_figure,
    )

    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in facts.items())
    rows = [row for s in wf.steps for row in step_rows(s)] + aggregate_rows(wf)
    tails = tail_summary(wf)
    tail_rows = [
        (name, f"{n}/{total}", "-" if np.isnan(ratio) else f"{ratio:.2f}") for name, (n, total, ratio) in tails.items()
    ]
    parts = [
        f"<ul>{items}</ul>",
        f"<p>The gate promoted {wf.promotions} of {len(wf.steps)} rounds. <b>gated</b> is what served each window: "
        "the round's CVaR-PPO model when its gate promoted it, else the rules.</p>",
        "<h2>Walk-forward table (each window measured after the round that precedes it)</h2>",
        table_html(rows),
        "<h2>Session tail vs fixed 1x</h2>",
        table_html(
            tail_rows, ("policy", "windows with session CVaR5 >= fixed 1x's", "mean session CVaR5 / fixed 1x's")
        ),
    ]
    for s in wf.steps:
        css = "yes" if s.decision.promote else "no"
        parts.append(
            f"<h2>{html.escape(s.step.next.label())}</h2><p class='{css}'>step {s.step.index} gate "
            f"({html.escape(', '.join(w.label() for w in s.step.gate))}): {html.escape(s.decision.reason)}</p>"
        )
        parts.append(image(f"{s.step.next.label()}: equity and session tail", _window_figure(s)))
    parts.append(
        image(
            "CVaR-PPO training curves per step",
            training_figure({f"step {s.step.index}": s.train_history for s in wf.steps}),
            2,
        )
    )
    return page(title, "".join(parts))


def _window_figure(s: StepResult) -> Figure:
    from trainer.evaluation.report import window_figure  # lazy: loads matplotlib only when used

    return window_figure({k: v for k, v in s.next_scores.items() if k != GATED}, s.step.next.label())
