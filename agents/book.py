"""A symbol's book: everything the worker knows of one symbol, advanced one input at a time.

One value per symbol holds its bars (``SymbolState``), its account (open risk and
closed P&L, ``AccountState``), the strategy histories of the strategies that traded
it (``StrategyHistory``), its open trades (``OpenTrade``), the event time of its
latest decided signal (``watermark``, for the stale-signal rule) and the position of
the last input it applied (``partition``, ``offset``).

The functions here are the one account and strategy-history model: the live worker
(``agents.inputs``), ``rlsizer backtest`` and the trainer's replay all advance books
with them, input by input in log order, so they compute the same numbers.

- ``with_bar(book, bar)``: the bar appended (``BarRejected`` for one out of order),
  open trades' excursions marked;
- ``decided(book, signal, ...)``: features and the decision, the decision counted as
  open risk; ``with_decision(book, decision)`` counts a decision made before (a replay
  of a recorded one, or the worker re-applying one it stored before a crash);
- ``with_fill(book, fill, ...)``: an entry opens a trade, an exit closes it and yields
  ``TradeClosed``, folded into history and account at once.

Each returns a new book and leaves the old one alone. The position moves with
``at(book, partition, offset)``; a record at or before it was applied already
(``applied``) -- that is how a worker that re-reads input after a crash or a broker
restart knows what it has done.

Serialised with ``to_bytes``/``from_bytes`` as one changelog record, so a book's parts
never disagree after a crash: each is written whole or not at all.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from hashlib import sha1
from types import MappingProxyType
from typing import Any, Final

from agents.features import FEATURE_SET, SymbolState, compute_features
from agents.outcomes import OpenTrade, OutcomeRejected, close_trade, mark, marked_by_bars, open_trade, reject_fill
from agents.retention import is_stale
from agents.sizing import PolicySlot, decide
from agents.state import AccountState, StrategyHistory, apply_decision, apply_outcome, apply_trade
from agents.state_json import StateCorrupt
from agents.strategy_map import StrategyMap
from agents.timestamps import from_micros, to_micros
from schemas.events import BarClosed, FeaturesComputed, OrderFilled, SignalRaised, SizeDecided, TradeClosed

_ID_NAMESPACE: Final = uuid.UUID("6f1c7b1e-6a53-4a56-9d1c-2b8f0d1e5a10")
_NAMESPACE_BYTES: Final = _ID_NAMESPACE.bytes
_MAGIC: Final = b"BK01"
_U32: Final = struct.Struct("<I")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolBook:
    symbol: str
    partition: int = -1
    offset: int = -1  # the last input applied (-1: none yet)
    bars: SymbolState | None = None
    account: AccountState = field(default_factory=AccountState)
    histories: Mapping[str, StrategyHistory] = field(default_factory=lambda: _EMPTY)  # strategy_id -> its history here
    trades: Mapping[str, OpenTrade] = field(
        default_factory=lambda: _EMPTY
    )  # signal_id -> open trade (entered, not exited)
    watermark: int | None = None  # ts_event (us) of the latest decided signal

    @classmethod
    def empty(cls, symbol: str) -> SymbolBook:
        return cls(symbol=symbol)

    def applied(self, partition: int, offset: int) -> bool:
        """The input at ``partition``/``offset`` was applied to this book already."""
        return partition == self.partition and offset <= self.offset

    def history(self, strategy_id: str) -> StrategyHistory:
        return self.histories.get(strategy_id) or StrategyHistory.empty(strategy_id)

    # -- serialisation -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        parts = [self.bars.to_bytes() if self.bars is not None else b"", self.account.to_bytes()]
        strategies = sorted(self.histories)
        parts += [self.histories[s].to_bytes() for s in strategies]
        head = json.dumps(
            {
                "s": self.symbol,
                "p": self.partition,
                "o": self.offset,
                "w": self.watermark,
                "h": strategies,
                "t": {sid: _trade_to_json(t) for sid, t in sorted(self.trades.items())},
            },
            separators=(",", ":"),
        ).encode()
        out = [_MAGIC, _U32.pack(len(head)), head]
        for part in parts:
            out += [_U32.pack(len(part)), part]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, raw: bytes) -> SymbolBook:
        if raw[:4] != _MAGIC:
            raise StateCorrupt(f"symbol book starts with {raw[:4]!r}, not {_MAGIC!r}")
        try:
            pos, chunks = 4, []
            while pos < len(raw):
                (n,) = _U32.unpack_from(raw, pos)
                if pos + 4 + n > len(raw):
                    raise ValueError(f"a part of {n} bytes at {pos} runs past the end ({len(raw)})")
                chunks.append(raw[pos + 4 : pos + 4 + n])
                pos += 4 + n
            head = json.loads(chunks[0])
            bars_raw, account_raw, *history_raw = chunks[1:]
            if len(history_raw) != len(head["h"]):
                raise ValueError(f"{len(head['h'])} strategies named, {len(history_raw)} histories stored")
            return cls(
                symbol=str(head["s"]),
                partition=int(head["p"]),
                offset=int(head["o"]),
                watermark=None if head["w"] is None else int(head["w"]),
                bars=SymbolState.from_bytes(bars_raw) if bars_raw else None,
                account=AccountState.from_bytes(account_raw),
                histories=MappingProxyType(
                    {s: StrategyHistory.from_bytes(h) for s, h in zip(head["h"], history_raw, strict=True)}
                ),
                trades=MappingProxyType({sid: _trade_from_json(t) for sid, t in head["t"].items()}),
            )
        except StateCorrupt:
            raise
        except (ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
            raise StateCorrupt(f"cannot decode the symbol book: {exc!r}") from exc


def event_id_for(signal_id: str, kind: str) -> str:
    """A stable event id for the ``kind`` event answering ``signal_id`` (features, decision): re-processing a
    signal after a crash yields the same ids, so downstream deduplication holds.

    ``str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{signal_id}"))`` (RFC 4122 version 5), built from
    the SHA-1 digest directly: two are made per signal, and the ``uuid.UUID`` object in between
    cost twice the hash.
    """
    h = bytearray(sha1(_NAMESPACE_BYTES + f"{kind}:{signal_id}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


_FIELDS: Final = ("symbol", "partition", "offset", "bars", "account", "histories", "trades", "watermark")
_set = object.__setattr__


def _evolve(book: SymbolBook, **changes: Any) -> SymbolBook:
    """``dataclasses.replace`` for a book, without its per-call field introspection (a book changes at every
    input: ``replace`` was ~3x the cost)."""
    new = object.__new__(SymbolBook)
    for name in _FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(book, name))
    return new


def at(book: SymbolBook, partition: int, offset: int) -> SymbolBook:
    """``book`` with the input at ``partition``/``offset`` counted as applied."""
    return _evolve(book, partition=partition, offset=offset)


# -- bars -------------------------------------------------------------------------------------


def with_bar(book: SymbolBook, bar: BarClosed) -> SymbolBook:
    """The bar appended (raises ``BarRejected``) and folded into the open trades' excursions."""
    bars = (book.bars or SymbolState.empty_for(bar)).updated(bar)
    trades = book.trades
    if trades:
        marked = {sid: mark(t, bar) for sid, t in trades.items()}
        if any(marked[sid] is not t for sid, t in trades.items()):
            trades = MappingProxyType(marked)
    return _evolve(book, bars=bars, trades=trades)


# -- signals ----------------------------------------------------------------------------------


def signal_features(
    book: SymbolBook, signal: SignalRaised, *, strategy_map: StrategyMap, now: datetime
) -> FeaturesComputed:
    """The features of ``signal`` from the book, point-in-time: bars, trades and decisions stamped at or
    before the signal (raises ``UnknownStrategy``). ``now`` becomes the event's ``ts_init``."""
    if signal.symbol != book.symbol:
        raise ValueError(f"signal for {signal.symbol!r} given the book of {book.symbol!r}")
    family = strategy_map.family(signal.strategy_id)
    features = compute_features(
        signal, symbol_state=book.bars, history=book.history(signal.strategy_id), account=book.account, family=family
    )
    return FeaturesComputed(
        event_id=event_id_for(signal.signal_id, "features"),
        ts_event=signal.ts_event,
        ts_init=now,
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
        strategy_type=family,
        feature_set=FEATURE_SET,
        features=features,
    )


def decided(
    book: SymbolBook,
    signal: SignalRaised,
    *,
    strategy_map: StrategyMap,
    slot: PolicySlot,
    now: datetime,
) -> tuple[SymbolBook, FeaturesComputed, SizeDecided]:
    """Features and the size decision for ``signal``, the decision counted as open risk.

    ``now`` becomes the events' ``ts_init``; ``latency_us`` is left 0 for the caller to time.
    """
    computed = signal_features(book, signal, strategy_map=strategy_map, now=now)
    decision = sized(signal, computed, slot)
    return with_decision(book, decision), computed, decision


def sized(signal: SignalRaised, computed: FeaturesComputed, slot: PolicySlot) -> SizeDecided:
    """The ``SizeDecided`` of ``signal`` by the policy in ``slot`` (its rules when empty or failing)."""
    sizing = decide(signal, computed.features, slot)
    return SizeDecided(
        event_id=event_id_for(signal.signal_id, "decision"),
        ts_event=signal.ts_event,
        ts_init=computed.ts_init,
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
        multiplier=sizing.multiplier,
        qty=signal.base_qty * sizing.multiplier,
        policy=sizing.policy,
        reason=sizing.reason,
        model_version=sizing.model_version,
        latency_us=0,
    )


def with_decision(book: SymbolBook, decision: SizeDecided) -> SymbolBook:
    """``decision`` counted as open risk until its trade closes (idempotent), the watermark raised."""
    ts = to_micros(decision.ts_event)
    watermark = ts if book.watermark is None or ts > book.watermark else book.watermark
    return _evolve(book, account=apply_decision(book.account, decision), watermark=watermark)


def stale(book: SymbolBook, ts_us: int, horizon_us: int) -> bool:
    """A signal at ``ts_us`` is older than the book's latest decided signal less ``horizon_us`` (0: never)."""
    return is_stale(ts_us, book.watermark, horizon_us)


# -- fills ------------------------------------------------------------------------------------


def with_fill(
    book: SymbolBook, fill: OrderFilled, *, signal: SignalRaised | None, closed: bool, now: datetime
) -> tuple[SymbolBook, TradeClosed | None]:
    """The book after ``fill``: an entry opens ``signal``'s trade, an exit closes it (``TradeClosed``, folded
    into history and account at once). ``signal``: the decided signal it names (None: none known);
    ``closed``: its trade closed before. Raises ``OutcomeRejected`` for a fill that cannot apply."""
    sid = fill.signal_id
    trade = "open" if sid in book.trades else "closed" if closed else "none"
    problem = reject_fill(fill, signal_known=signal is not None or trade == "open", trade=trade)
    if problem is not None:
        raise problem
    if fill.leg == "ENTRY":
        assert signal is not None
        trades = dict(book.trades)
        trades[sid] = open_trade(signal, fill)
        return _evolve(book, trades=MappingProxyType(trades)), None
    outcome = close_trade(_marked(book.trades[sid], book.bars, fill), fill, ts_init=now)
    trades = {s: t for s, t in book.trades.items() if s != sid}
    return _evolve(with_outcome(book, outcome), trades=MappingProxyType(trades)), outcome


def with_outcome(book: SymbolBook, trade: TradeClosed) -> SymbolBook:
    """A closed trade folded into its strategy's history and the account (idempotent on signal_id)."""
    histories = dict(book.histories)
    histories[trade.strategy_id] = apply_outcome(book.history(trade.strategy_id), trade)
    return _evolve(book, histories=MappingProxyType(histories), account=apply_trade(book.account, trade))


def _marked(trade: OpenTrade, bars: SymbolState | None, exit_fill: OrderFilled) -> OpenTrade:
    if bars is None:
        return trade
    until = to_micros(exit_fill.ts_event)
    window = bars.bars_until(until)
    return marked_by_bars(
        trade,
        window.ts,
        window.high,
        window.low,
        until=exit_fill.ts_event,
        complete=bars.holds_all_since(to_micros(trade.entry_ts)),
    )


def _trade_to_json(trade: OpenTrade) -> dict[str, Any]:
    doc = asdict(trade)
    for key in ("entry_ts", "last_bar_ts"):
        doc[key] = to_micros(doc[key]) if doc[key] is not None else None
    return doc


def _trade_from_json(doc: dict[str, Any]) -> OpenTrade:
    doc = dict(doc)
    for key in ("entry_ts", "last_bar_ts"):
        doc[key] = from_micros(int(doc[key])) if doc[key] is not None else None
    return OpenTrade(**doc)


__all__ = [
    "OutcomeRejected",
    "SymbolBook",
    "at",
    "decided",
    "event_id_for",
    "signal_features",
    "sized",
    "stale",
    "with_bar",
    "with_decision",
    "with_fill",
    "with_outcome",
]
