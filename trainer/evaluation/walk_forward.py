"""Walk-forward windows of whole sessions, and the scores of every policy over one window.

A session is a UTC day that has signals (``trainer.learning.environment.session_ids``). A window is a run
of consecutive sessions, given as the time range ``[start, end)`` from the midnight that opens
its first session to the midnight after its last, so ``rlsizer backtest --from start --to end``
sizes exactly its signals. Windows never overlap and are in time order.

- ``held_out_windows``: the training round's split: the last ``windows`` windows are held out
  (a model is trained once, on everything before the first of them), each scored on its own;
- ``rolling_steps``: ``rlsizer evaluate``'s schedule: at each step a round as above (train,
  then ``gate_windows`` held-out windows for the gate), and the window after them, which that
  round's model never saw, measures what its verdict would have earned.

``score_window`` replays every policy over one window's signals (the account before the window
is the live one, as in a backtest) and measures the scored trades in the backtest's order, with the
session returns the gate compares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from trainer.evaluation.baselines import Policy
from trainer.evaluation.metrics import PolicyMetrics, policy_metrics, session_returns
from trainer.learning.environment import LoggedSignals, trade_rewards


class NotEnoughSessions(ValueError):
    """The history is too short for the windows asked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    index: int  # 1-based, in time order
    start: datetime  # UTC midnight opening the first session
    end: datetime  # UTC midnight after the last session (exclusive)
    n_sessions: int

    def label(self) -> str:
        return f"w{self.index} {self.start:%Y-%m-%d}..{self.end - timedelta(days=1):%Y-%m-%d}"


def _midnight(day: np.datetime64) -> datetime:
    at: datetime = day.astype("datetime64[D]").astype("datetime64[us]").astype(datetime)
    return at.replace(tzinfo=UTC)


def session_days(data: LoggedSignals) -> np.ndarray:
    """The days (datetime64[D]) with signals, in time order."""
    return np.unique(data.ts.astype("datetime64[D]"))


def _windows(days: np.ndarray, first: int, count: int, size: int, start_index: int = 1) -> list[Window]:
    out = []
    for k in range(count):
        lo, hi = first + k * size, first + (k + 1) * size
        out.append(
            Window(
                index=start_index + k,
                start=_midnight(days[lo]),
                end=_midnight(days[hi - 1] + np.timedelta64(1, "D")),
                n_sessions=hi - lo,
            )
        )
    return out


def window_size(n_sessions: int, windows: int, holdout_fraction: float) -> int:
    """Sessions per window when ``windows`` windows share ``holdout_fraction`` of the sessions."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    return max(1, round(holdout_fraction * n_sessions / windows))


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldOut:
    train_start: datetime | None  # None: from the first session
    train_end: datetime  # = windows[0].start
    windows: tuple[Window, ...]

    def train(self, data: LoggedSignals) -> LoggedSignals:
        """The training rows, scored only by outcomes recorded before the held-out windows start."""
        return data.window(self.train_start, self.train_end, known_before=self.train_end)


def held_out_windows(
    data: LoggedSignals,
    *,
    windows: int = 3,
    window_sessions: int | None = None,
    holdout_fraction: float = 0.3,
    min_train_sessions: int = 5,
) -> HeldOut:
    """The last ``windows`` windows of ``window_sessions`` sessions (default: ``holdout_fraction`` of all
    sessions, shared), and the training range before them."""
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")
    days = session_days(data)
    size = window_sessions or window_size(days.size, windows, holdout_fraction)
    first = days.size - windows * size
    if first < min_train_sessions:
        raise NotEnoughSessions(
            f"{days.size} sessions: {windows} held-out windows of {size} sessions leave {max(first, 0)} to train on "
            f"(needs {min_train_sessions})"
        )
    held = tuple(_windows(days, first, windows, size))
    return HeldOut(train_start=None, train_end=held[0].start, windows=held)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One simulated round: train before ``gate``, gate on ``gate``'s windows, measured on ``next``."""

    index: int
    train_start: datetime | None
    train_end: datetime
    gate: tuple[Window, ...]
    next: Window

    def train(self, data: LoggedSignals) -> LoggedSignals:
        """The training rows, scored only by outcomes recorded before the gate windows start."""
        return data.window(self.train_start, self.train_end, known_before=self.train_end)


def rolling_steps(
    data: LoggedSignals,
    *,
    steps: int = 4,
    gate_windows: int = 2,
    window_sessions: int | None = None,
    holdout_fraction: float = 0.5,
    train_sessions: int | None = None,
    min_train_sessions: int = 20,
) -> list[Step]:
    """``steps`` rounds rolled forward one window at a time over the last ``steps + gate_windows`` windows.

    Step k trains on the sessions before its gate windows (all of them, or the last
    ``train_sessions``), gates on ``gate_windows`` windows, and is measured on the window after.
    """
    if steps < 1 or gate_windows < 1:
        raise ValueError("steps and gate_windows must be >= 1")
    days = session_days(data)
    total = steps + gate_windows
    size = window_size(days.size, total, holdout_fraction) if window_sessions is None else window_sessions
    first = days.size - total * size
    if first < min_train_sessions:
        raise NotEnoughSessions(
            f"{days.size} sessions: {total} windows of {size} sessions leave {max(first, 0)} to train on (needs {min_train_sessions})"
        )
    all_windows = _windows(days, first, total, size)
    out = []
    for k in range(steps):
        gate = tuple(all_windows[k : k + gate_windows])
        train_lo = first + k * size
        start = None if train_sessions is None else _midnight(days[max(0, train_lo - train_sessions)])
        out.append(
            Step(index=k + 1, train_start=start, train_end=gate[0].start, gate=gate, next=all_windows[k + gate_windows])
        )
    return out


@dataclass(frozen=True, slots=True, eq=False)
class PolicyScore:
    """One policy over one window: the scored trades (in the backtest's order), their metrics and session returns."""

    name: str
    multipliers: np.ndarray  # of the scored trades
    rewards: np.ndarray  # of the scored trades
    ts: np.ndarray  # their times
    family: np.ndarray
    metrics: PolicyMetrics
    sessions: np.ndarray  # session (UTC day) returns, time order


def score_window(
    window: LoggedSignals, policies: Sequence[Policy], *, n_boot: int = 500, seed: int = 0
) -> dict[str, PolicyScore]:
    """Replay each policy once over ``window`` and measure its scored trades (``trainer.evaluation.metrics.policy_metrics``)."""
    scored = window.scored
    if not scored.any():
        raise NotEnoughSessions("no scored trade in the window")
    out: dict[str, PolicyScore] = {}
    for policy in policies:
        if policy.name in out:
            raise ValueError(f"duplicate policy name {policy.name!r}")
        m = np.asarray(policy.multipliers(window), dtype=np.float64)
        if m.shape != (len(window),):
            raise ValueError(f"policy {policy.name!r} returned shape {m.shape}, expected ({len(window)},)")
        rewards = trade_rewards(m, window.r_multiple, window.cost_r)[scored]
        ts = window.ts[scored]
        out[policy.name] = PolicyScore(
            name=policy.name,
            multipliers=m[scored],
            rewards=rewards,
            ts=ts,
            family=window.family[scored],
            metrics=policy_metrics(rewards, ts=ts, multipliers=m[scored], n_boot=n_boot, seed=seed),
            sessions=session_returns(rewards, ts),
        )
    return out


def pooled(scores: Sequence[Mapping[str, PolicyScore]], name: str) -> PolicyMetrics:
    """``name``'s metrics over the scored trades of several windows together."""
    parts = [s[name] for s in scores]
    rewards = np.concatenate([p.rewards for p in parts])
    ts = np.concatenate([p.ts for p in parts])
    mults = np.concatenate([p.multipliers for p in parts])
    return policy_metrics(rewards, ts=ts, multipliers=mults, n_boot=200)


# -- the walk-forward table ------------------------------------------------------------------------

TABLE_COLUMNS = (
    "window",
    "policy",
    "trades",
    "sessions",
    "return R",
    "Sharpe",
    "max DD R",
    "CVaR5 trade",
    "CVaR5 session",
    "ret/|sCVaR5|",
    "mean mult",
)


def metric_cells(window: str, name: str, m: PolicyMetrics) -> tuple[str, ...]:
    ratio = "-" if not np.isfinite(m.return_to_session_cvar) else f"{m.return_to_session_cvar:+.2f}"
    return (
        window,
        name,
        str(m.n_trades),
        str(m.n_sessions),
        f"{m.total_return:+.2f}",
        f"{m.sharpe_per_trade:+.3f}",
        f"{m.max_drawdown:.2f}",
        f"{m.cvar_5:+.3f}",
        f"{m.session_cvar_5:+.2f}",
        ratio,
        "-" if m.mean_multiplier is None else f"{m.mean_multiplier:.2f}",
    )


def table_rows(
    windows: Sequence[Window], scores: Sequence[Mapping[str, PolicyScore]], *, total: bool = True
) -> list[tuple[str, ...]]:
    """One row per window and policy, then (``total``) each policy over all windows together."""
    rows = [
        metric_cells(w.label(), name, s.metrics)
        for w, sc in zip(windows, scores, strict=True)
        for name, s in sc.items()
    ]
    if total and len(scores) > 1:
        rows += [metric_cells("all windows", name, pooled(scores, name)) for name in scores[0]]
    return rows


def format_rows(rows: Sequence[Sequence[str]], header: Sequence[str] = TABLE_COLUMNS) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])
