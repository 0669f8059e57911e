"""Counterfactual sizing environment: any sizing policy replayed over recorded signals, with live's account.

A size multiplier scales a trade's position and its risk alike, so a trade's R does not depend
on it, and a trade recorded at one size tells what it would have earned at any size:

    reward_t = m_t * R_t - m_t * cost_t            (R_t, cost_t: realised R and costs at size 1)

Only the account features (``acct_*``) depend on the policy. They are computed by the worker's
own code, ``agents.account`` (``apply_decision``, ``apply_trade``, ``account_features``), with the
account kept per symbol as the worker keeps it, from the events that move it, in the order the
backtest applies them (``AccountLog``): the policy's own decisions (open risk until the trade's
``TradeClosed``), the recorded ``TradeClosed`` events (closed P&L at R x the multiplier the trade
was sized with, at its ``exit_ts``), and, for signals outside the rows being sized, the decision
made live. So a policy replayed here sees exactly the account features ``rlsizer backtest``
computes for it (``trainer.backtest.run.run_policy``), which are the ones live computes.

Lanes. One symbol's account is a chain: a decision is open risk for the signals after it until
its trade closes, and a closed trade counts in the session P&L of the rest of its UTC day. The
chain breaks where nothing carries over: before an event that no earlier event of the symbol
still reaches (a decision reaches until its trade closes and to the end of the close's UTC day,
or ``OPEN_TTL_US`` when it never closes; a close to the end of its exit's day). From such a
point an empty ``AccountState`` gives the same features as the real one, so each piece (a lane)
replays on its own, and all lanes advance in lock-step: at each step every unfinished lane
decides its next signal, one batched policy call for all of them (``SizingEnv``).

Sessions (``episode_id``) are UTC days, as in ``account_features``: the session return is the
sum of the rewards of the day's signals, over all symbols.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from agents.account import OPEN_TTL_US, AccountState, account_features, apply_decision, apply_trade
from agents.features.catalog import FEATURE_NAMES
from agents.timestamps import DAY_US, to_micros, utc64
from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN, SignalRaised, SizeDecided, TradeClosed

ACCOUNT_FEATURES: Final[tuple[str, ...]] = tuple(name for name in FEATURE_NAMES if name.startswith("acct_"))
"""The policy-dependent features, in catalog order: what ``account_features`` returns."""

_REPLAY_EVENT_ID: Final = "00000000-0000-5000-8000-000000000000"  # replayed decisions are never published

LaneItem = int | SizeDecided | TradeClosed
"""One event of a symbol's account: a row's decision (its index), a decision made live for a signal
that is not a row, or a closed trade."""


@dataclass(frozen=True, slots=True, eq=False)
class AccountLog:
    """What moves each symbol's account, in the order the backtest applies it.

    ``lanes``: per symbol, its ``LaneItem`` sequence. ``live``: per row (index = row id), the
    decision made live, or None; a row outside the set being sized is decided with it (as the
    backtest decides signals before its window), or not at all when None.
    ``pieces``: (lane, start, stop) item ranges that replay independently (module docstring).
    """

    lanes: tuple[tuple[LaneItem, ...], ...]
    live: tuple[SizeDecided | None, ...]
    signals: tuple[SignalRaised, ...]  # per row id
    pieces: tuple[tuple[int, int, int], ...] = field(init=False)
    row_piece: np.ndarray = field(init=False, repr=False)  # int64 [rows]: the piece holding each row
    row_item: np.ndarray = field(init=False, repr=False)  # int64 [rows]: its position in the lane

    def __post_init__(self) -> None:
        n = len(self.signals)
        if len(self.live) != n:
            raise ValueError(f"live has {len(self.live)} entries for {n} rows")
        row_piece = np.full(n, -1, dtype=np.int64)
        row_item = np.full(n, -1, dtype=np.int64)
        pieces: list[tuple[int, int, int]] = []
        for lane_index, items in enumerate(self.lanes):
            for start, stop in independent_pieces(items, self.signals):
                for pos in range(start, stop):
                    item = items[pos]
                    if isinstance(item, int):
                        if row_piece[item] >= 0:
                            raise ValueError(f"row {item} appears twice in the account log")
                        row_piece[item], row_item[item] = len(pieces), pos
                pieces.append((lane_index, start, stop))
        if n and (row_piece < 0).any():
            raise ValueError(f"{int((row_piece < 0).sum())} rows are missing from the account log")
        object.__setattr__(self, "pieces", tuple(pieces))
        object.__setattr__(self, "row_piece", row_piece)
        object.__setattr__(self, "row_item", row_item)


def _day_end(us: int) -> int:
    return (us // DAY_US + 1) * DAY_US - 1


def independent_pieces(items: Sequence[LaneItem], signals: Sequence[SignalRaised]) -> list[tuple[int, int]]:
    """Split one symbol's items where no earlier item's effect on the account features reaches.

    An item's reach (conservative): a decision, until its trade's close is applied and to the
    end of the exit's UTC day (session P&L), or ``OPEN_TTL_US`` after it without a close; a close,
    to the end of its exit's day, and to its signal's decision if that comes later (then the
    decision is ignored as already closed).
    """
    times: list[int] = []
    sids: list[str] = []
    for item in items:
        if isinstance(item, TradeClosed):
            times.append(to_micros(item.ts_event))
            sids.append(item.signal_id)
        else:
            sig = signals[item] if isinstance(item, int) else item
            times.append(to_micros(sig.ts_event))
            sids.append(sig.signal_id)
    closes: dict[str, tuple[int, int]] = {}  # signal_id -> (close applied at, end of the exit's day)
    decided: dict[str, int] = {}
    for pos, item in enumerate(items):
        if isinstance(item, TradeClosed):
            closes.setdefault(item.signal_id, (times[pos], _day_end(to_micros(item.exit_ts))))
        else:
            decided.setdefault(sids[pos], times[pos])
    pieces: list[tuple[int, int]] = []
    start, reach = 0, -1
    for pos, item in enumerate(items):
        t = times[pos]
        if pos > start and t > reach:
            pieces.append((start, pos))
            start = pos
        sid = sids[pos]
        close = closes.get(sid)
        if isinstance(item, TradeClosed):
            until = max(t, close[1] if close else t, decided.get(sid, t))
        elif close is not None:
            until = max(t, close[0], close[1])
        else:
            until = t + OPEN_TTL_US
        reach = max(reach, until)
    if items:
        pieces.append((start, len(items)))
    return pieces


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LoggedSignals:
    """Recorded signals with their outcomes at size 1, the input of every sizing policy.

    Rows are in the order the backtest decides them: the inputs' log order (a symbol's signals in
    the order its partition holds them, partitions one after the other), not necessarily time
    order across symbols; every figure is measured in this order, as ``rlsizer backtest`` does. ``row_id`` indexes the rows of ``account`` (a subset keeps them),
    ``r_multiple``/``cost_r`` are NaN for a signal without a usable outcome: it is sized (it is
    open risk) but not scored. ``outcome_ts`` is when the scored outcome was recorded (NaT without
    one).
    """

    features: np.ndarray  # float64 [n, d]
    feature_names: tuple[str, ...]
    r_multiple: npt.NDArray[np.float64]  # [n], realised R at size 1, gross of costs; NaN: not scored
    cost_r: npt.NDArray[np.float64]  # [n], costs in R at size 1; NaN: not scored
    family: np.ndarray  # str [n]
    ts: np.ndarray  # datetime64[us] [n], the signal's ts_event (UTC)
    symbol: np.ndarray  # str [n]
    row_id: np.ndarray  # int64 [n], rows of ``account``
    account: AccountLog
    outcome_ts: np.ndarray  # datetime64[us] [n], the scored outcome's ts_event; NaT where not scored
    episode_id: np.ndarray = field(init=False)  # int64 [n]: the session, days since 1970-01-01 UTC

    def __post_init__(self) -> None:
        n = self.features.shape[0] if self.features.ndim == 2 else -1
        if self.features.ndim != 2 or self.features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"features must be [n, {len(self.feature_names)}] to match feature_names, got shape {self.features.shape}"
            )
        for name in ("r_multiple", "cost_r", "family", "ts", "symbol", "row_id", "outcome_ts"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        missing = [c for c in ACCOUNT_FEATURES if c not in self.feature_names]
        if missing:
            raise ValueError(f"features lack the account-state columns {missing}")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names contains duplicates")
        if not np.all(np.isfinite(self.features)):
            raise ValueError("features must be finite")
        if np.any(np.isnan(self.r_multiple) != np.isnan(self.cost_r)) or np.any(
            np.isnan(self.r_multiple) != np.isnat(self.outcome_ts)
        ):
            raise ValueError("r_multiple, cost_r and outcome_ts must be NaN (NaT) on the same rows (not scored)")
        if np.any(np.isinf(self.r_multiple)) or np.any(np.isinf(self.cost_r)):
            raise ValueError("r_multiple and cost_r must be finite or NaN")
        if n and (self.row_id.min() < 0 or self.row_id.max() >= len(self.account.signals)):
            raise ValueError("row_id outside the account log")
        if np.unique(self.row_id).size != n:
            raise ValueError("row_id contains duplicates")
        object.__setattr__(self, "episode_id", session_ids(self.ts))

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def scored(self) -> npt.NDArray[np.bool_]:
        """Rows with an outcome: the ones rewards and metrics count."""
        return ~np.isnan(self.r_multiple)

    @property
    def signals(self) -> tuple[SignalRaised, ...]:
        return tuple(self.account.signals[i] for i in self.row_id)

    def column(self, name: str) -> np.ndarray:
        return self.features[:, self.feature_names.index(name)]

    def subset(self, mask: np.ndarray, *, scored_before: np.datetime64 | None = None) -> LoggedSignals:
        """The rows selected by a boolean mask or an increasing index array; the others are decided live.

        ``scored_before``: outcomes recorded at or after it are not known: those rows are not scored.
        """
        index = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask, dtype=np.int64)
        if index.size > 1 and np.any(np.diff(index) <= 0):
            raise ValueError("a subset keeps the row order: pass a mask or increasing indices")
        r, cost, outcome = self.r_multiple[index], self.cost_r[index], self.outcome_ts[index]
        if scored_before is not None:
            late = ~np.isnat(outcome) & (outcome >= scored_before)
            r, cost, outcome = (
                np.where(late, np.nan, r),
                np.where(late, np.nan, cost),
                np.where(late, np.datetime64("NaT"), outcome),
            )
        return LoggedSignals(
            features=self.features[index],
            feature_names=self.feature_names,
            r_multiple=r,
            cost_r=cost,
            family=self.family[index],
            ts=self.ts[index],
            symbol=self.symbol[index],
            row_id=self.row_id[index],
            account=self.account,
            outcome_ts=outcome.astype("datetime64[us]"),
        )

    def window(
        self,
        start: datetime | np.datetime64 | None,
        end: datetime | np.datetime64 | None,
        *,
        known_before: datetime | np.datetime64 | None = None,
    ) -> LoggedSignals:
        """The signals with ``start <= ts < end``: what ``rlsizer backtest --from start --to end`` sizes and
        scores (it scores every recorded outcome of them). ``known_before``: score only the outcomes
        recorded before it (a training range must not learn from outcomes realised after it ends)."""
        mask = np.ones(len(self), dtype=bool)
        if start is not None:
            mask &= self.ts >= utc64(start)
        if end is not None:
            mask &= self.ts < utc64(end)
        return self.subset(mask, scored_before=None if known_before is None else utc64(known_before))

    def fingerprint(self) -> str:
        """A short content hash, used in run names so a run names the data it saw."""
        h = hashlib.sha256()
        for arr in (
            self.features,
            np.nan_to_num(self.r_multiple, nan=-1e300),
            np.nan_to_num(self.cost_r, nan=-1e300),
            self.ts.astype(np.int64),
            self.row_id,
        ):
            h.update(np.ascontiguousarray(arr).tobytes())
        for texts in (self.feature_names, self.family, self.symbol):
            h.update("\x1f".join(map(str, texts)).encode())
        return h.hexdigest()[:8]


def session_ids(ts: np.ndarray) -> np.ndarray:
    """The session of each time: its UTC day, as days since 1970-01-01 (``account_features``' session)."""
    return np.asarray(ts).astype("datetime64[us]").astype("datetime64[D]").astype(np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class EpisodeLayout:
    """Row indices laid out as [session, step], longest session first, -1 where a session ended."""

    index: np.ndarray  # int64 [n_episodes, max_len]
    lengths: np.ndarray  # int64 [n_episodes], non-increasing

    @property
    def n_episodes(self) -> int:
        return int(self.index.shape[0])

    @property
    def max_len(self) -> int:
        return int(self.index.shape[1])


def episode_layout(data: LoggedSignals) -> EpisodeLayout:
    """Group rows by session (keeping row order within one) and sort sessions by length."""
    if len(data) == 0:
        raise ValueError("no signals to replay")
    ids, inverse, counts = np.unique(data.episode_id, return_inverse=True, return_counts=True)
    order = np.lexsort((ids, -counts))  # longest first, ties by session: deterministic
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    rows = np.lexsort((np.arange(len(data)), rank[inverse]))  # stable within a session
    lengths = counts[order].astype(np.int64)
    index = np.full((ids.size, int(lengths[0])), -1, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    step = np.arange(len(data)) - np.repeat(starts, lengths)
    index[np.repeat(np.arange(ids.size), lengths), step] = rows
    return EpisodeLayout(index=index, lengths=lengths)


def trade_rewards(multipliers: np.ndarray, r_multiple: np.ndarray, cost_r: np.ndarray) -> np.ndarray:
    """reward = m * R - m * cost, per trade, in R; 0 for a signal without an outcome (NaN R)."""
    reward = multipliers * r_multiple - multipliers * cost_r
    return np.where(np.isnan(r_multiple), 0.0, reward)


def _decision(signal: SignalRaised, multiplier: float) -> SizeDecided:
    """The decision the account records (it reads the signal id, time and multiplier)."""
    return SizeDecided(
        event_id=_REPLAY_EVENT_ID,
        ts_event=signal.ts_event,
        ts_init=signal.ts_event,
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
        multiplier=multiplier,
        qty=signal.base_qty * multiplier,
        policy="MODEL",
        reason="replay",
        latency_us=0,
    )


class _Lane:
    """One piece of one symbol's items, with its account, stopping after the piece's last sized row."""

    __slots__ = ("account", "items", "pos", "row", "stop")

    def __init__(self, items: tuple[LaneItem, ...], start: int, stop: int) -> None:
        self.items, self.pos, self.stop = items, start, stop
        self.account = AccountState()
        self.row = -1


class SizingEnv:
    """All lanes in lock-step: ``observe`` the next signal of each unfinished lane, then ``step``.

    ``rows`` index ``data``. Every row of ``data`` is decided by the policy; rows of the account
    log outside ``data`` by their live decision.
    """

    def __init__(self, data: LoggedSignals) -> None:
        self.data = data
        log = data.account
        self._acct_cols = np.array([data.feature_names.index(c) for c in ACCOUNT_FEATURES])
        self._position = np.full(len(log.signals), -1, dtype=np.int64)  # row id -> index in data
        self._position[data.row_id] = np.arange(len(data))
        last: dict[int, int] = {}  # piece -> the position after its last sized row
        for rid in data.row_id.tolist():
            piece = int(log.row_piece[rid])
            last[piece] = max(last.get(piece, 0), int(log.row_item[rid]) + 1)
        self._pieces = sorted(
            ((log.pieces[p][0], log.pieces[p][1], stop) for p, stop in last.items()), key=lambda x: (x[0], x[1])
        )
        self.lanes: list[_Lane] = []
        self.reset()

    def reset(self) -> None:
        lanes = self.data.account.lanes
        self.lanes = [_Lane(lanes[lane], start, stop) for lane, start, stop in self._pieces]

    @property
    def done(self) -> bool:
        return not self.lanes

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, observations): the next sized signal of every unfinished lane, account columns live's."""
        log, position = self.data.account, self._position
        rows = np.empty(len(self.lanes), dtype=np.int64)
        acct = np.empty((len(self.lanes), len(ACCOUNT_FEATURES)), dtype=np.float64)
        for k, lane in enumerate(self.lanes):
            items, account = lane.items, lane.account
            while True:
                item = items[lane.pos]
                if isinstance(item, TradeClosed):
                    account = apply_trade(account, item)
                elif isinstance(item, SizeDecided):
                    account = apply_decision(account, item)
                elif position[item] >= 0:
                    break
                elif (live := log.live[item]) is not None:
                    account = apply_decision(account, live)
                lane.pos += 1
            lane.account, lane.row = account, item
            values = account_features(account, to_micros(log.signals[item].ts_event))
            acct[k] = [values[name] for name in ACCOUNT_FEATURES]
            rows[k] = position[item]
        obs = self.data.features[rows]
        obs[:, self._acct_cols] = acct
        return rows, obs

    def step(self, multipliers: np.ndarray) -> np.ndarray:
        """Decide the observed signals with ``multipliers`` (clipped to the serving range); their rewards."""
        m = np.clip(np.asarray(multipliers, dtype=np.float64).reshape(-1), MULTIPLIER_MIN, MULTIPLIER_MAX)
        if m.shape != (len(self.lanes),):
            raise ValueError(f"expected {len(self.lanes)} multipliers, got {m.shape}")
        signals, position = self.data.account.signals, self._position
        rows = np.empty(len(self.lanes), dtype=np.int64)
        still: list[_Lane] = []
        for k, lane in enumerate(self.lanes):
            lane.account = apply_decision(lane.account, _decision(signals[lane.row], float(m[k])))
            rows[k] = position[lane.row]
            lane.pos += 1
            if lane.pos < lane.stop:
                still.append(lane)
        self.lanes = still
        return trade_rewards(m, self.data.r_multiple[rows], self.data.cost_r[rows])


@dataclass(frozen=True, slots=True, eq=False)
class Replay:
    """The outcome of a policy over recorded signals, in the data's row order."""

    multipliers: np.ndarray  # [n]
    rewards: np.ndarray  # [n], 0 where not scored
    observations: np.ndarray  # [n, d], with the policy's own account columns


Decide = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(observations [m, d] float64, rows [m] of the data) -> multipliers [m]"""


def replay(data: LoggedSignals, decide: Decide) -> Replay:
    """Run a policy over every row of ``data``; multipliers are clipped to [0.25, 2.0] as serving does."""
    env = SizingEnv(data)
    n = len(data)
    multipliers = np.zeros(n, dtype=np.float64)
    rewards = np.zeros(n, dtype=np.float64)
    observations = np.zeros(data.features.shape, dtype=np.float64)
    while not env.done:
        rows, obs = env.observe()
        m = np.clip(np.asarray(decide(obs, rows), dtype=np.float64).reshape(-1), MULTIPLIER_MIN, MULTIPLIER_MAX)
        rewards[rows] = env.step(m)
        multipliers[rows] = m
        observations[rows] = obs
    return Replay(multipliers=multipliers, rewards=rewards, observations=observations)


def episode_returns(data: LoggedSignals, rewards: np.ndarray) -> np.ndarray:
    """Sum of rewards per session (UTC day), sessions in time order."""
    _, inverse = np.unique(data.episode_id, return_inverse=True)
    return np.bincount(inverse.reshape(-1), weights=rewards)


def feature_dicts(data: LoggedSignals, obs: np.ndarray) -> list[Mapping[str, float]]:
    """Observation rows as name -> value mappings (what ``agents.sizing.decide`` reads)."""
    names = data.feature_names
    return [dict(zip(names, row, strict=True)) for row in obs.tolist()]
