"""The round's HTML report: self-contained images, the walk-forward table from the metrics, escaping, safe paths."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from trainer.backtest.synthetic import synthetic_signals
from trainer.evaluation.baselines import FixedPolicy
from trainer.evaluation.gate import GateConfig, promotion_decision
from trainer.evaluation.report import ReportContent, render_html, report_path, window_figure, write_report
from trainer.evaluation.walk_forward import held_out_windows, score_window
from trainer.learning.environment import LoggedSignals

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Half:
    name: str = "cvar_ppo"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return np.where(data.column("sig_q_score") < 0.5, 0.5, 1.2)


def content(**overrides: object) -> ReportContent:
    data = synthetic_signals(n_episodes=60, trades_per_episode=4, seed=1)
    split = held_out_windows(data, windows=2, holdout_fraction=0.5)
    scores = [score_window(data.window(w.start, w.end), [Half(), FixedPolicy()], n_boot=20) for w in split.windows]
    decision = promotion_decision(scores, challenger="cvar_ppo", required=("fixed_1x",), config=GateConfig(n_boot=50))
    history = [
        {
            "update": float(i),
            "losses/policy": 0.1 / i,
            "losses/value": 1.0 / i,
            "charts/mean_return": 0.1 * i,
            "charts/mean_multiplier": 1.0,
            "charts/cvar": -2.0 + 0.1 * i,
            "charts/var_nu": -1.0,
            "charts/lambda": 0.05 * i,
        }
        for i in range(1, 6)
    ]
    values = dict(
        title="round <v1>",
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        decision=replace(decision, reason=decision.reason + " <worse>"),
        windows=split.windows,
        histories={"cvar_ppo": history},
        facts={"version": "v1"},
    )
    values.update(overrides)
    return ReportContent(**values)  # type: ignore[arg-type]


def test_report_embeds_png_plots_and_no_external_resources(tmp_path: Path) -> None:
    path = write_report(content(), tmp_path / "reports" / "r.html")
    html = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2 + 1 + 2  # one per window, the multipliers, training and risk curves
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    assert "http://" not in html and "https://" not in html


def test_the_walk_forward_table_shows_each_windows_metrics_and_text_is_escaped() -> None:
    c = content()
    html = render_html(c)
    for window, scores in zip(c.windows, c.decision.windows, strict=True):
        for name, score in scores.items():
            m = score.metrics
            row = re.search(rf"<tr><td>{re.escape(window.label())}</td><td>{name}</td>(.*?)</tr>", html)
            assert row is not None, (window.label(), name)
            cells = re.findall(r"<td>(.*?)</td>", row.group(1))
            assert cells[2] == f"{m.total_return:+.2f}" and cells[6] == f"{m.session_cvar_5:+.2f}"
            assert cells[7] == f"{m.return_to_session_cvar:+.2f}" and cells[8] == f"{m.mean_multiplier:.2f}"
    assert "<td>all windows</td><td>cvar_ppo</td>" in html
    assert "&lt;worse&gt;" in html and "<worse>" not in html
    assert "<title>round &lt;v1&gt;</title>" in html


def test_window_figure_plots_equity_and_the_worst_sessions() -> None:
    c = content()
    scores = c.decision.windows[0]
    fig = window_figure(scores, "w1")
    equity, tail = fig.axes
    for line, s in zip(equity.lines, scores.values(), strict=True):
        np.testing.assert_allclose(line.get_ydata(), np.concatenate(([0.0], np.cumsum(s.rewards))))
    worst = [line for line in tail.lines if len(line.get_ydata()) > 2]
    for line, s in zip(worst, scores.values(), strict=True):
        assert line.get_ydata()[0] == pytest.approx(s.sessions.min())


def test_report_without_training_history_still_renders() -> None:
    html = render_html(content(histories={}))
    assert html.count("data:image/png;base64,") == 3


@pytest.mark.parametrize("name", ["v20240101T000000Z-cvarppo_a0.05_b-2_s1_abc", "../../etc/passwd", "a b/c"])
def test_report_path_stays_in_the_reports_directory(tmp_path: Path, name: str) -> None:
    path = report_path(tmp_path, name)
    assert path.parent == tmp_path / "reports" and path.suffix == ".html" and "/" not in path.stem
