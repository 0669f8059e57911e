"""Backtest output: a text table per policy (and per strategy family), and a self-contained HTML report.

The HTML embeds its plots as PNG data URIs (equity curves in cumulative R, drawdowns,
multiplier distributions), so one file can be mailed or archived. Plots use the
non-interactive Agg backend; matplotlib is imported only when a report is written.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN
from trainer.backtest.run import BacktestResult, PolicyResult
from trainer.evaluation.metrics import PolicyMetrics

COLUMNS = (
    "policy",
    "family",
    "trades",
    "return R",
    "Sharpe",
    "Sortino",
    "max DD R",
    "CVaR 5% R",
    "session CVaR 5% R",
    "ret/|sCVaR5|",
    "hit rate",
    "mean mult",
)


def metric_row(policy: str, family: str, m: PolicyMetrics) -> tuple[str, ...]:
    return (
        policy,
        family,
        str(m.n_trades),
        f"{m.total_return:.3f}",
        f"{m.sharpe_per_trade:.3f}",
        f"{m.sortino:.3f}",
        f"{m.max_drawdown:.3f}",
        f"{m.cvar_5:.3f}",
        f"{m.session_cvar_5:.3f}",
        f"{m.return_to_session_cvar:.2f}" if np.isfinite(m.return_to_session_cvar) else "-",
        f"{m.hit_rate:.3f}",
        f"{m.mean_multiplier:.3f}" if m.mean_multiplier is not None else "-",
    )


def rows(result: BacktestResult) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for r in result.results:
        if r.overall is None:
            out.append((r.run.name, "all", "0", *["-"] * (len(COLUMNS) - 3)))
            continue
        out.append(metric_row(r.run.name, "all", r.overall))
        out.extend(metric_row(r.run.name, fam, m) for fam, m in r.by_family.items())
    return out


def format_table(table: Sequence[Sequence[str]], header: Sequence[str] = COLUMNS) -> str:
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in table)])


def text_report(result: BacktestResult) -> str:
    head = (
        f"backtest {result.start.isoformat()} .. {result.end.isoformat()} (rewards m x (R - cost), in R; "
        f"a session is a UTC day)"
    )
    notes = []
    for r in result.results:
        run = r.run
        unscored = int((~run.scored).sum())
        skipped = ", ".join(f"{k} {v}" for k, v in run.skipped.items()) or "none"
        used = ", ".join(f"{k} {int((run.policy_used == k).sum())}" for k in sorted(set(run.policy_used)))
        notes.append(
            f"{run.name}: {len(run.signal_ids)} signals sized ({used or 'none'}), {unscored} without outcome; skipped: {skipped}"
        )
    return "\n".join([head, format_table(rows(result)), *notes])


# -- HTML ---------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def curves(results: Sequence[PolicyResult]) -> list[tuple[str, str]]:
    import matplotlib  # lazy: loads matplotlib only when used

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: loads matplotlib only when used

    plots = []
    fig_eq, ax_eq = plt.subplots(figsize=(9, 3.5))
    fig_dd, ax_dd = plt.subplots(figsize=(9, 3.5))
    fig_m, ax_m = plt.subplots(figsize=(9, 3.5))
    bins = np.linspace(MULTIPLIER_MIN, MULTIPLIER_MAX, 36)
    for r in results:
        run = r.run
        mask = run.scored
        reward = run.reward[mask]
        curve = np.cumsum(reward)
        peak = np.maximum.accumulate(np.concatenate(([0.0], curve)))[1:]
        ax_eq.plot(run.ts[mask], curve, label=run.name, lw=1.2)
        ax_dd.plot(run.ts[mask], curve - peak, label=run.name, lw=1.2)
        ax_m.hist(run.multiplier, bins=bins.tolist(), alpha=0.5, label=run.name)
    for ax, title, ylabel in (
        (ax_eq, "equity (cumulative R)", "R"),
        (ax_dd, "drawdown below peak", "R"),
        (ax_m, "multipliers", "signals"),
    ):
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    for title, fig in (("Equity curves", fig_eq), ("Drawdowns", fig_dd), ("Multiplier distributions", fig_m)):
        fig.autofmt_xdate() if fig is not fig_m else None
        plots.append((title, _png(fig)))
        plt.close(fig)
    return plots


def write_html(result: BacktestResult, path: Path, *, extra: str = "") -> Path:
    """Write the report to ``path`` (parents created); returns it."""
    table = rows(result)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in COLUMNS)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table)
    figures = "".join(
        f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='{src}'>" for t, src in curves(result.results)
    )
    notes = html.escape(text_report(result).split("\n", 1)[0])
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>rlsizer backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(-n+2){text-align:left}</style>"
        f"</head><body><h1>rlsizer backtest</h1><p>{notes}</p><table><tr>{th}</tr>{trs}</table>"
        f"{'<pre>' + html.escape(extra) + '</pre>' if extra else ''}{figures}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path
