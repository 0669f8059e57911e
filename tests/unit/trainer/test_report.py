"""The round's HTML report: self-contained images, the table from the metrics, escaping, safe paths."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from trainer.gate import Comparison
from trainer.holdout import PolicyRun, Verdict
from trainer.metrics import policy_metrics
from trainer.report import ReportContent, equity_figure, render_html, report_path, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(name: str, rewards: list[float], mults: list[float]) -> PolicyRun:
    n = len(rewards)
    ts = np.datetime64("2024-01-01T00:00", "us") + np.arange(n).astype("timedelta64[h]").astype("timedelta64[us]")
    family = np.array(["EmaCross", "Breakout"] * (n // 2) + ["EmaCross"] * (n % 2))
    return PolicyRun(name=name, multipliers=np.array(mults), rewards=np.array(rewards), family=family, ts=ts)


def content(**overrides: object) -> ReportContent:
    runs = {
        "cvar_ppo": run("cvar_ppo", [1.0, -0.5, 2.0, -3.0, 0.5, 1.5], [1.2, 0.5, 1.8, 0.3, 1.0, 1.1]),
        "fixed_1x": run("fixed_1x", [0.8, -1.0, 1.0, -4.0, 0.5, 1.0], [1.0] * 6),
    }
    table = {name: policy_metrics(r.rewards, ts=r.ts, multipliers=r.multipliers, n_boot=50) for name, r in runs.items()}
    history = [{"update": float(i), "losses/policy": 0.1 / i, "losses/value": 1.0 / i, "charts/mean_return": 0.1 * i,
                "charts/mean_multiplier": 1.0, "charts/cvar": -2.0 + 0.1 * i, "charts/var_nu": -1.0, "charts/lambda": 0.05 * i}
               for i in range(1, 6)]
    values = dict(
        title="round <v1>",
        created_at=datetime(2024, 5, 1, tzinfo=timezone.utc),
        verdict=Verdict(promote=False, reason="not promoted: vs rules <worse>", required=("fixed_1x", "rules")),
        table=table,
        comparisons=(Comparison(reference="fixed_1x", return_diff=1.5, return_diff_lower=-0.2, cvar_diff=0.3,
                                cvar_diff_lower=-0.1, passed=False),),
        runs=runs,
        histories={"cvar_ppo": history},
        facts={"version": "v1"},
    )
    values.update(overrides)
    return ReportContent(**values)  # type: ignore[arg-type]


def test_report_embeds_four_png_plots_and_no_external_resources(tmp_path: Path) -> None:
    path = write_report(content(), tmp_path / "reports" / "r.html")
    html = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    assert "http://" not in html and "https://" not in html


def test_table_shows_each_policys_metrics_and_text_is_escaped() -> None:
    c = content()
    html = render_html(c)
    for name, m in c.table.items():
        row = re.search(rf"<tr><td>{name}</td>(.*?)</tr>", html)
        assert row is not None, name
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        assert cells[1] == f"{m.total_return:+.2f}" and cells[6] == f"{m.cvar_5:+.3f}" and cells[8] == f"{m.mean_multiplier:.2f}"
    assert "&lt;worse&gt;" in html and "<worse>" not in html
    assert "<title>round &lt;v1&gt;</title>" in html


def test_equity_figure_plots_the_cumulative_rewards_and_drawdowns() -> None:
    c = content()
    fig = equity_figure(c.runs)
    equity, drawdown = fig.axes
    for line, r in zip(equity.lines, c.runs.values(), strict=True):
        np.testing.assert_allclose(line.get_ydata(), np.concatenate(([0.0], np.cumsum(r.rewards))))
    worst = min(float(np.min(line.get_ydata())) for line in drawdown.lines)
    assert worst == pytest.approx(-max(m.max_drawdown for m in c.table.values()))


def test_report_without_training_history_still_renders() -> None:
    html = render_html(content(histories={}))
    assert html.count("data:image/png;base64,") == 2


@pytest.mark.parametrize("name", ["v20240101T000000Z-cvarppo_a0.05_b-2_s1_abc", "../../etc/passwd", "a b/c"])
def test_report_path_stays_in_the_reports_directory(tmp_path: Path, name: str) -> None:
    path = report_path(tmp_path, name)
    assert path.parent == tmp_path / "reports" and path.suffix == ".html" and "/" not in path.stem
