"""The training round's report: one self-contained HTML file (plots embedded as base64 PNGs).

Sections: the gate's decision and why (with its numbers); the walk-forward table (every policy on
every held-out window, same signals, then all windows together: return, Sharpe, max drawdown,
per-trade and session CVaR 5 %, return / |session CVaR 5 %|, mean multiplier); the comparisons the
gate made; per window, equity curves and the session tail (sorted session returns with each
policy's CVaR 5 %); the multiplier distribution per strategy family; training curves and the
CVaR / VaR / lambda trajectory of each trained run.

The figure and table helpers are shared with ``rlsizer evaluate``'s report. Figures are drawn
with ``matplotlib.figure.Figure`` (no pyplot global state, no display).
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

from trainer.evaluation.gate import Comparison, GateDecision
from trainer.evaluation.walk_forward import TABLE_COLUMNS, PolicyScore, Window, table_rows

History = Sequence[Mapping[str, float]]
WindowScores = Mapping[str, PolicyScore]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportContent:
    title: str
    created_at: datetime
    decision: GateDecision
    windows: Sequence[Window]
    histories: Mapping[str, History]
    """training history per trained run label (e.g. cvar_ppo, plain_ppo)"""
    facts: Mapping[str, str] = field(default_factory=dict)
    """free key/value lines: version, run name, data range, rows, max |torch - onnx| ..."""


def report_path(data_dir: Path, name: str) -> Path:
    """``<data_dir>/reports/<name>.html``, the name reduced to safe file-name characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "report"
    return Path(data_dir) / "reports" / f"{safe}.html"


def write_report(content: ReportContent, path: Path) -> Path:
    return write_html(render_html(content), path)


def write_html(text: str, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- figures


def png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def window_figure(scores: WindowScores, title: str) -> Figure:
    """Equity (cumulative R over the window's scored trades) and the session tail of every policy."""
    fig = Figure(figsize=(11, 3.6))
    equity, tail = fig.subplots(1, 2, gridspec_kw={"width_ratios": (3, 2)})
    for name, s in scores.items():
        line = equity.plot(np.concatenate(([0.0], np.cumsum(s.rewards))), label=name, linewidth=1.1)[0]
        worst = np.sort(s.sessions)
        k = max(1, int(np.ceil(0.2 * worst.size)))
        tail.plot(np.arange(1, k + 1), worst[:k], marker=".", linewidth=0.9, color=line.get_color())
        tail.axhline(s.metrics.session_cvar_5, color=line.get_color(), linestyle=":", linewidth=0.9)
    equity.set_title(f"{title}: equity (same trades)", fontsize=9)
    equity.set_ylabel("cumulative R")
    equity.set_xlabel("scored trade #")
    equity.legend(loc="upper left", fontsize=7)
    equity.grid(alpha=0.3)
    tail.set_title("worst 20% of sessions (dotted: session CVaR 5%)", fontsize=9)
    tail.set_xlabel("session rank (worst first)")
    tail.set_ylabel("session return R")
    tail.grid(alpha=0.3)
    return fig


def multiplier_figure(scores: WindowScores) -> Figure:
    families = sorted({str(f) for s in scores.values() for f in s.family})
    names = list(scores)
    fig = Figure(figsize=(10, 2.2 + 1.8 * max(1, len(families))))
    axes = np.atleast_1d(fig.subplots(max(1, len(families)), 1, sharex=True, squeeze=False)[:, 0])
    for ax, family in zip(axes, families, strict=False):
        data = [s.multipliers[s.family == family] for s in scores.values()]
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
    tail.set_title("session-return tail over training (R)", fontsize=9)
    dual.set_title("Lagrange multiplier lambda", fontsize=9)
    for ax in (tail, dual):
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------- HTML


def table_html(rows: Sequence[Sequence[str]], header: Sequence[str] = TABLE_COLUMNS) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def comparisons_html(comparisons: Sequence[Comparison]) -> str:
    head = (
        "vs",
        "required",
        "return R (challenger / ref)",
        "diff lower bound",
        "session CVaR5 (challenger / ref)",
        "diff lower bound",
        "windows not worse",
        "passed",
    )
    rows = [
        (
            c.reference,
            "yes" if c.required else "no",
            f"{c.challenger_return:+.2f} / {c.reference_return:+.2f}",
            f"{c.return_diff_lower:+.2f}",
            f"{c.challenger_tail:+.2f} / {c.reference_tail:+.2f}",
            f"{c.tail_diff_lower:+.2f}",
            f"{c.windows_not_worse}/{len(c.window_tails)}",
            "yes" if c.passed else "no",
        )
        for c in comparisons
    ]
    return table_html(rows, head)


STYLE = """body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:first-child,th:first-child,td:nth-child(2){text-align:left}.yes{color:#070}.no{color:#a00}img{max-width:100%}"""


def image(title: str, fig: Figure, level: int = 3) -> str:
    return f'<h{level}>{html.escape(title)}</h{level}><img alt="{html.escape(title)}" src="data:image/png;base64,{png(fig)}">'


def page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def render_html(content: ReportContent) -> str:
    decision = content.decision
    scores = decision.windows
    facts = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in content.facts.items())
    parts = [
        f"<p>created {content.created_at.isoformat()}</p><ul>{facts}</ul>",
        f"<h2>Decision</h2><p class='{'yes' if decision.promote else 'no'}'>{html.escape(decision.reason)}</p>",
        f"<p>required: {html.escape(', '.join(decision.required))}</p>",
        "<h2>Walk-forward table (held-out windows, same signals for every policy)</h2>",
        table_html(table_rows(content.windows, scores)),
        "<h2>Gate comparisons (challenger vs reference, sessions of all windows, paired block bootstrap)</h2>",
        comparisons_html(decision.comparisons),
        "<h2>Per window: equity and session tail</h2>",
    ]
    parts += [image(w.label(), window_figure(s, w.label())) for w, s in zip(content.windows, scores, strict=True)]
    if scores:
        parts.append(
            image("Multiplier distribution per strategy family (last window)", multiplier_figure(scores[-1]), 2)
        )
    if content.histories:
        parts.append(image("Training curves", training_figure(content.histories), 2))
        parts.append(image("CVaR and lambda over training", risk_figure(content.histories), 2))
    return page(content.title, "".join(parts))
