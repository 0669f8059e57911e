"""Walk-forward evaluation: rounds rolled forward, measured on the window after, and the CLI on recorded shipped data."""

from __future__ import annotations

import argparse
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from config.settings import Settings
from rlsizer.commands import evaluate as evaluate_command
from trainer.backtest.synthetic import synthetic_signals
from trainer.evaluation.evaluate import (
    GATED,
    POLICIES,
    EvaluateConfig,
    WalkForward,
    render_html,
    tail_summary,
    walk_forward,
)
from trainer.evaluation.gate import GateConfig
from trainer.evaluation.walk_forward import rolling_steps
from trainer.learning.cvar_ppo import TrainConfig

TINY = TrainConfig(total_updates=2, hidden=(8,), epochs=1, minibatch=64)


@pytest.fixture(scope="module")
def data():
    return synthetic_signals(n_episodes=90, trades_per_episode=4, seed=4)


@pytest.fixture(scope="module")
def wf(data) -> WalkForward:
    return walk_forward(
        data, EvaluateConfig(steps=2, gate_windows=2, holdout_fraction=0.5), TINY, GateConfig(n_boot=50)
    )


def test_steps_train_on_the_past_gate_on_the_next_windows_and_are_measured_after(data) -> None:
    steps = rolling_steps(data, steps=3, gate_windows=2, window_sessions=10, min_train_sessions=20)
    for step in steps:
        assert step.train(data).ts.max() < np.datetime64(step.gate[0].start.replace(tzinfo=None))
        assert step.gate[-1].end <= step.next.start
        assert all(a.end <= b.start for a, b in pairwise(step.gate))
    assert [s.next.index for s in steps] == [3, 4, 5] and steps[1].gate[0] == steps[0].gate[1]  # rolled by one window
    rolling = rolling_steps(data, steps=3, gate_windows=2, window_sessions=10, train_sessions=15, min_train_sessions=20)
    assert all(s.train_start is not None and len(np.unique(s.train(data).episode_id)) == 15 for s in rolling)


def test_each_step_scores_every_policy_and_what_its_verdict_served(wf: WalkForward) -> None:
    assert len(wf.steps) == 2
    for s in wf.steps:
        assert list(s.next_scores) == [*POLICIES, GATED]
        served = s.next_scores["cvar_ppo" if s.decision.promote else "rules"]
        np.testing.assert_array_equal(s.next_scores[GATED].rewards, served.rewards)
        assert s.served == ("cvar_ppo" if s.decision.promote else "rules")
        trades = {name: sc.metrics.n_trades for name, sc in s.next_scores.items()}
        assert len(set(trades.values())) == 1  # the same signals for every policy
    assert wf.promotions == sum(s.decision.promote for s in wf.steps)
    tails = tail_summary(wf)
    assert tails["fixed_1x"] == (2, 2, 1.0)


def test_report_has_the_table_a_verdict_and_a_plot_per_window(wf: WalkForward) -> None:
    html = render_html(wf, title="wf", facts={"data": "synthetic"})
    for s in wf.steps:
        assert s.step.next.label() in html and s.decision.reason.split(":")[0] in html
    assert html.count("data:image/png;base64,") == len(wf.steps) + 1
    assert "<td>all windows</td><td>gated</td>" in html


def test_the_cli_records_the_shipped_data_and_evaluates_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="rlsizer")
    evaluate_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "evaluate",
            "--record",
            "GOOGL",
            "--max-bars",
            "700",
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--steps",
            "1",
            "--gate-windows",
            "2",
            "--updates",
            "2",
            "--set",
            "hidden=(8,)",
            "--set",
            "size_cap=1.0",
            "--bootstrap",
            "50",
            "--report",
            str(tmp_path / "r.html"),
            "--no-progress",
        ]
    )
    settings = replace(Settings.from_env(), data_dir=tmp_path)
    assert args.func(args, settings) == 0
    out = capsys.readouterr().out
    assert "recorded GOOGL: 700 bars" in out and "step 1: trained before" in out
    pooled = [line.split()[2] for line in out.splitlines() if line.startswith("all windows")]
    assert pooled == [*POLICIES, GATED]
    assert "session CVaR5 not worse than fixed 1x's in" in out and (tmp_path / "r.html").exists()
    assert "size_cap=1.0" in (tmp_path / "r.html").read_text()
    again = parser.parse_args(
        ["evaluate", "--record", "GOOGL", "--warehouse", str(tmp_path / "w.duckdb"), "--no-progress"]
    )
    assert again.func(again, settings) == 1  # recording never overwrites a warehouse
    bad = parser.parse_args(["evaluate", "--warehouse", str(tmp_path / "w.duckdb"), "--no-refresh", "--set", "nope=1"])
    assert bad.func(bad, settings) == 1 and "nope" in capsys.readouterr().err
