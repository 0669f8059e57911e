"""Counterfactual sizing environment: any sizing policy replays exactly over logged signals.

A size multiplier scales a trade's position but not its outcome measured in R (risk units of
the base position), so a trade logged at size 1 tells us what it would have earned at any size:

    reward_t = m_t * R_t - m_t * cost_t            (R_t, cost_t: realised R and costs at size 1)

One episode is one trading session (``episode_id``); rows are time-ordered inside an episode.
Only the account-state features depend on the policy, and they are recomputed here from the
policy's own past sizes within the session, so a policy can learn to cut size after losses:

- ``acct_session_pnl_r``: sum of the policy's rewards so far in the session (0 at the start);
- ``acct_drawdown_r``: distance below the session peak, ``max(0, max_{s<t} pnl_s) - pnl_t`` with
  the peak starting at 0, so it is >= 0 (a magnitude, not a signed number);
- ``acct_open_risk_r``: the multiplier of the previous trade in the session (0 for the first).
  We log no exit times, so we assume the most recent position is still open when the next
  signal arrives (one open position of ``m_{t-1}`` R at risk). This is conservative and gives
  the feature the same meaning and range as live (risk in flight, in R), rather than a constant
  0 that the network would learn to ignore and then mis-read in serving.

Episodes advance in lock-step (all sessions at their k-th trade at once): episodes are sorted by
length, longest first, so the sessions still running at step k are always a prefix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ACCOUNT_FEATURES: tuple[str, str, str] = ("acct_session_pnl_r", "acct_drawdown_r", "acct_open_risk_r")
SIGNAL_FEATURES: tuple[str, ...] = (
    "sig_q_score",
    "sig_score",
    "sig_atr_pct",
    "strat_win_rate",
    "strat_mean_r",
    "strat_n_trades",
)
FAMILIES: tuple[str, ...] = ("EmaCross", "MeanReversion", "Breakout", "Momentum")
MIN_MULTIPLIER = 0.25
MAX_MULTIPLIER = 2.0


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LoggedSignals:
    """Logged signals with their realised outcomes at size 1, the input of every sizing policy.

    Rows are grouped by ``episode_id`` (a trading session) and time-ordered within an episode.
    """

    features: np.ndarray  # float32 [n, d]
    feature_names: tuple[str, ...]
    r_multiple: np.ndarray  # float64 [n], realised R at size 1, gross of costs
    cost_r: np.ndarray  # float64 [n], costs in R at size 1
    episode_id: np.ndarray  # int64 [n]
    family: np.ndarray  # str [n]
    ts: np.ndarray  # datetime64[us] [n]

    def __post_init__(self) -> None:
        n = self.features.shape[0] if self.features.ndim == 2 else -1
        if self.features.ndim != 2 or self.features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"features must be [n, {len(self.feature_names)}] to match feature_names, "
                f"got shape {self.features.shape}"
            )
        for name in ("r_multiple", "cost_r", "episode_id", "family", "ts"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        missing = [c for c in ACCOUNT_FEATURES if c not in self.feature_names]
        if missing:
            raise ValueError(f"features lack the account-state columns {missing}")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names contains duplicates")
        if not (np.all(np.isfinite(self.r_multiple)) and np.all(np.isfinite(self.cost_r))):
            raise ValueError("r_multiple and cost_r must be finite")
        if not np.all(np.isfinite(self.features)):
            raise ValueError("features must be finite (impute before building LoggedSignals)")
        if n > 1:
            same = self.episode_id[1:] == self.episode_id[:-1]
            if np.any(same & (self.ts[1:] < self.ts[:-1])):
                raise ValueError("rows must be time-ordered within each episode")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def column(self, name: str) -> np.ndarray:
        return self.features[:, self.feature_names.index(name)]

    def subset(self, mask: np.ndarray) -> LoggedSignals:
        """The rows selected by a boolean mask or an index array (order kept)."""
        return LoggedSignals(
            features=self.features[mask],
            feature_names=self.feature_names,
            r_multiple=self.r_multiple[mask],
            cost_r=self.cost_r[mask],
            episode_id=self.episode_id[mask],
            family=self.family[mask],
            ts=self.ts[mask],
        )

    def fingerprint(self) -> str:
        """A short content hash, used in run names so a run names the data it saw."""
        h = hashlib.sha256()
        for arr in (self.features, self.r_multiple, self.cost_r, self.episode_id, self.ts.astype(np.int64)):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\x1f".join(self.feature_names).encode())
        h.update("\x1f".join(map(str, self.family)).encode())
        return h.hexdigest()[:8]


@dataclass(frozen=True, slots=True, eq=False)
class EpisodeLayout:
    """Row indices laid out as [episode, step], longest episode first, -1 where a session ended."""

    index: np.ndarray  # int64 [n_episodes, max_len]
    lengths: np.ndarray  # int64 [n_episodes], non-increasing
    active_at: np.ndarray = field(repr=False)  # int64 [max_len]: episodes still running at step k

    @property
    def n_episodes(self) -> int:
        return int(self.index.shape[0])

    @property
    def max_len(self) -> int:
        return int(self.index.shape[1])


def episode_layout(data: LoggedSignals) -> EpisodeLayout:
    """Group rows by episode (keeping row order within one) and sort episodes by length."""
    if len(data) == 0:
        raise ValueError("no signals to replay")
    ids, inverse, counts = np.unique(data.episode_id, return_inverse=True, return_counts=True)
    order = np.lexsort((ids, -counts))  # longest first, ties by episode id: deterministic
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    episode_rank = rank[inverse]
    rows = np.lexsort((np.arange(len(data)), episode_rank))  # stable within an episode
    lengths = counts[order].astype(np.int64)
    max_len = int(lengths[0])
    index = np.full((ids.size, max_len), -1, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    step = np.arange(len(data)) - np.repeat(starts, lengths)
    index[np.repeat(np.arange(ids.size), lengths), step] = rows
    active_at = np.array([int(np.sum(lengths > k)) for k in range(max_len)], dtype=np.int64)
    return EpisodeLayout(index=index, lengths=lengths, active_at=active_at)


@dataclass(frozen=True, slots=True, eq=False)
class AccountState:
    """Per-episode account state, indexed like the episodes of an EpisodeLayout."""

    pnl: np.ndarray  # session PnL in R
    peak: np.ndarray  # running max of pnl, starting at 0
    last_multiplier: np.ndarray  # multiplier of the previous trade (0 before the first)

    @staticmethod
    def start(n_episodes: int) -> AccountState:
        zeros = np.zeros(n_episodes, dtype=np.float64)
        return AccountState(pnl=zeros, peak=zeros.copy(), last_multiplier=zeros.copy())

    def features(self, k: int) -> np.ndarray:
        """[k, 3] account features of the first k episodes, in ACCOUNT_FEATURES order."""
        return np.stack(
            (self.pnl[:k], self.peak[:k] - self.pnl[:k], self.last_multiplier[:k]), axis=1
        )

    def after(self, rewards: np.ndarray, multipliers: np.ndarray) -> AccountState:
        """State after the first len(rewards) episodes took one more trade."""
        k = rewards.shape[0]
        pnl, peak, last = self.pnl.copy(), self.peak.copy(), self.last_multiplier.copy()
        pnl[:k] += rewards
        peak[:k] = np.maximum(peak[:k], pnl[:k])
        last[:k] = multipliers
        return AccountState(pnl=pnl, peak=peak, last_multiplier=last)


def trade_rewards(multipliers: np.ndarray, r_multiple: np.ndarray, cost_r: np.ndarray) -> np.ndarray:
    """reward = m * R - m * cost, per trade, in R."""
    return multipliers * r_multiple - multipliers * cost_r


class SizingEnv:
    """Lock-step replay of all episodes; ``observe`` then ``step`` once per trade index k."""

    def __init__(self, data: LoggedSignals) -> None:
        self.data = data
        self.layout = episode_layout(data)
        self._acct_cols = np.array([data.feature_names.index(c) for c in ACCOUNT_FEATURES])
        self.state = AccountState.start(self.layout.n_episodes)

    def reset(self) -> None:
        self.state = AccountState.start(self.layout.n_episodes)

    def rows(self, k: int) -> np.ndarray:
        """Row indices of the trades at step k of the episodes still running."""
        return self.layout.index[: self.layout.active_at[k], k]

    def observe(self, k: int) -> np.ndarray:
        """Features of the trades at step k, account columns replaced by the policy's own state."""
        rows = self.rows(k)
        obs = self.data.features[rows].astype(np.float32, copy=True)
        obs[:, self._acct_cols] = self.state.features(rows.size).astype(np.float32)
        return obs

    def step(self, k: int, multipliers: np.ndarray) -> np.ndarray:
        """Apply the multipliers to the trades at step k; returns their rewards."""
        rows = self.rows(k)
        if multipliers.shape != rows.shape:
            raise ValueError(f"expected {rows.size} multipliers at step {k}, got {multipliers.shape}")
        rewards = trade_rewards(multipliers.astype(np.float64), self.data.r_multiple[rows], self.data.cost_r[rows])
        self.state = self.state.after(rewards, multipliers.astype(np.float64))
        return rewards


@dataclass(frozen=True, slots=True, eq=False)
class Replay:
    """The outcome of a policy over logged signals, in the original row order."""

    multipliers: np.ndarray  # [n]
    rewards: np.ndarray  # [n]
    observations: np.ndarray  # [n, d], with the policy-implied account columns


def replay(data: LoggedSignals, policy: Callable[[np.ndarray], np.ndarray]) -> Replay:
    """Run a policy (observations [m, d] -> multipliers [m]) over every episode.

    Multipliers are clipped to [0.25, 2.0], the range the serving side enforces.
    """
    env = SizingEnv(data)
    n = len(data)
    multipliers = np.zeros(n, dtype=np.float64)
    rewards = np.zeros(n, dtype=np.float64)
    observations = np.zeros(data.features.shape, dtype=np.float32)
    for k in range(env.layout.max_len):
        rows = env.rows(k)
        obs = env.observe(k)
        m = np.clip(np.asarray(policy(obs), dtype=np.float64).reshape(-1), MIN_MULTIPLIER, MAX_MULTIPLIER)
        rewards[rows] = env.step(k, m)
        multipliers[rows] = m
        observations[rows] = obs
    return Replay(multipliers=multipliers, rewards=rewards, observations=observations)


def episode_returns(data: LoggedSignals, rewards: np.ndarray) -> np.ndarray:
    """Sum of rewards per episode, episodes in ascending episode_id order."""
    _, inverse = np.unique(data.episode_id, return_inverse=True)
    return np.bincount(inverse, weights=rewards)
