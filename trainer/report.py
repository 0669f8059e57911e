"""The training round's report: one self-contained HTML file (plots embedded as base64 PNGs).

Sections: the decision and why; the held-out metrics table (every policy, same trades); the
comparisons the gate made; equity curves and drawdowns on the held-out window; the multiplier
distribution per strategy family; training curves (losses, mean episode return) and the
CVaR / VaR / lambda trajectory of each trained run.

Figures are drawn with ``matplotlib.figure.Figure`` (no pyplot global state, no display).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from trainer.gate import Comparison
from trainer.holdout import PolicyRun, Verdict
from trainer.metrics import PolicyMetrics

History = Sequence[Mapping[str, float]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportContent:
    title: str
    created_at: datetime
    verdict: Verdict
    table: Mapping[str, PolicyMetrics]
    comparisons: Sequence[Comparison]
    runs: Mapping[str, PolicyRun]
    histories: Mapping[str, History]
    """training history per trained run label (e.g. cvar_ppo, plain_ppo)"""
    facts: Mapping[str, str] = field(default_factory=dict)
    """free key/value lines: version, run name, data range, rows, max |torch - onnx| ..."""


def report_path(data_dir: Path, name: str) -> Path:
    """``<data_dir>/reports/<name>.html``, the name reduced to safe file-name characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "report"
    return Path(data_dir) / "reports" / f"{safe}.html"


def write_report(content: ReportContent, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_html(content), encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- figures


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def equity_figure(runs: Mapping[str, PolicyRun]) -> Figure:
    fig = Figure(figsize=(10, 6))
    equity, drawdown = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (2, 1)})
    for name, run in runs.items():
        curve = np.concatenate(([0.0], np.cumsum(run.rewards)))
        equity.plot(curve, label=name, linewidth=1.2)
        drawdown.plot(curve - np.maximum.accumulate(curve), linewidth=1.0)
    equity.set_ylabel("cumulative R")
    equity.set_title("held-out window: equity per policy (same trades)")
    equity.legend(loc="upper left", fontsize=8)
    equity.grid(alpha=0.3)
    drawdown.set_ylabel("drawdown (R)")
    drawdown.set_xlabel("held-out trade #")
    drawdown.grid(alpha=0.3)
    return fig


def multiplier_figure(runs: Mapping[str, PolicyRun]) -> Figure:
    families = sorted({str(f) for run in runs.values() for f in run.family})
    names = list(runs)
    fig = Figure(figsize=(10, 2.2 + 1.8 * max(1, len(families))))
    axes = np.atleast_1d(fig.subplots(max(1, len(families)), 1, sharex=True, squeeze=False)[:, 0])
    for ax, family in zip(axes, families, strict=False):
        data = [run.multipliers[run.family == family] for run in runs.values()]
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], vert=False, showfliers=False)
        ax.set_yticks(range(1, len(names) + 1), names, fontsize=7)
        ax.set_title(f"{family} (n={data[0].size if data else 0})", fontsize=9)
        ax.set_xlim(0.2, 2.05)
        ax.grid(alpha=0.3, axis="x")
    axes[-1].set_xlabel("size multiplier")
    return fig


def _series(history: History, key: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([row.get("update", i + 1) for i, row in enumerate(history)], dtype=np.float64)
    y = np.array([row.get(key, np.nan) for row in history], dtype=np.float64)
    return x, y


def training_figure(histories: Mapping[str, History]) -> Figure:
    fig = Figure(figsize=(10, 6))
    axes = fig.subplots(2, 2).ravel()
    keys = ("losses/policy", "losses/value", "charts/mean_return", "charts/mean_multiplier")
    for ax, key in zip(axes, keys, strict=True):
        for label, history in histories.items():
            ax.plot(*_series(history, key), label=label, linewidth=1.2)
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    for ax in axes[2:]:
        ax.set_xlabel("update")
    return fig


def risk_figure(histories: Mapping[str, History]) -> Figure:
    fig = Figure(figsize=(10, 3.5))
    tail, dual = fig.subplots(1, 2)
    for label, history in histories.items():
        tail.plot(*_series(history, "charts/cvar"), label=f"{label} CVaR", linewidth=1.2)
        tail.plot(*_series(history, "charts/var_nu"), label=f"{label} VaR (nu)", linewidth=0.8, linestyle="--")
        dual.plot(*_series(history, "charts/lambda"), label=label, linewidth=1.2)
    tail.set_title("episode-return tail over training (R)", fontsize=9)
    dual.set_title("Lagrange multiplier lambda", fontsize=9)
    for ax in (tail, dual):
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------- HTML


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "" if value is None else fmt.format(value)


def metrics_table_html(table: Mapping[str, PolicyMetrics]) -> str:
    head = ("policy", "trades", "return (R)", "90% CI", "Sharpe/trade", "Sharpe ann.", "max DD (R)", "CVaR 5%", "hit rate", "mean mult.")
    rows = []
    for name, m in table.items():
        cells = (
            name,
            str(m.n_trades),
            _num(m.total_return, "{:+.2f}"),
            f"[{m.total_return_ci[0]:+.2f}, {m.total_return_ci[1]:+.2f}]",
            _num(m.sharpe_per_trade),
            _num(m.sharpe_annualised, "{:.2f}"),
            _num(m.max_drawdown, "{:.2f}"),
            _num(m.cvar_5, "{:+.3f}"),
            _num(m.hit_rate, "{:.1%}"),
            _num(m.mean_multiplier, "{:.2f}"),
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def comparisons_html(comparisons: Sequence[Comparison], required: Sequence[str]) -> str:
    head = ("vs", "required", "return diff (R)", "lower bound", "CVaR5 diff", "lower bound", "passed")
    rows = []
    for c in comparisons:
        cells = (
            c.reference,
            "yes" if c.reference in required else "no",
            f"{c.return_diff:+.3f}",
            f"{c.return_diff_lower:+.3f}",
            f"{c.cvar_diff:+.3f}",
            f"{c.cvar_diff_lower:+.3f}",
            "yes" if c.passed else "no",
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.yes{color:#070}.no{color:#a00}img{max-width:100%}"""


def render_html(content: ReportContent) -> str:
    verdict = content.verdict
    figures = []
    if content.runs:
        figures.append(("Held-out equity and drawdown", equity_figure(content.runs)))
        figures.append(("Multiplier distribution per strategy family (held-out)", multiplier_figure(content.runs)))
    if content.histories:
        figures.append(("Training curves", training_figure(content.histories)))
        figures.append(("CVaR and lambda over training", risk_figure(content.histories)))
    facts = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in content.facts.items())
    images = "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="data:image/png;base64,{_png(fig)}">'
        for title, fig in figures
    )
    css_class = "yes" if verdict.promote else "no"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(content.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(content.title)}</h1>"
        f"<p>created {content.created_at.isoformat()}</p><ul>{facts}</ul>"
        f"<h2>Decision</h2><p class='{css_class}'>{html.escape(verdict.reason)}</p>"
        f"<p>required to beat: {html.escape(', '.join(verdict.required))}</p>"
        f"<h2>Held-out metrics</h2>{metrics_table_html(content.table)}"
        f"<h2>Gate comparisons (challenger vs reference, paired block bootstrap)</h2>"
        f"{comparisons_html(content.comparisons, verdict.required)}"
        f"{images}</body></html>"
    )
