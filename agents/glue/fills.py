"""Fills to outcomes: the glue between ``OrderFilled`` records and ``agents.outcomes``.

Per signal the worker keeps one ``trades`` table entry (key ``signal_id``, on the
symbol's partition like everything else of that symbol) holding the signal as
received, the trade's state (``none`` → ``open`` → ``closed``), the fill event ids
applied and the open trade's excursions. A per-symbol index of open trades lets
each closed bar update MAE/MFE in bounded work (the open trades of one symbol); at the
exit they are recomputed from the symbol's bars (``agents.outcomes.marked_by_bars``), so
they do not depend on the order in which bars and fills were read.

Rules, all ending in a dead letter with an actionable reason when broken: a fill
for a signal never seen (``orphan_fill``), an exit before any entry
(``exit_before_entry``), a second entry or a fill after the close (``duplicate``),
a fill that does not match its signal (``mismatch``). A fill redelivered with the
same ``event_id`` is a no-op, except that a redelivered exit re-sends the same
``TradeClosed`` (its ``event_id`` derives from the signal id, so consumers dedupe).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from agents.glue.handlers import Effects, Handlers, Outgoing, Source
from agents.outcomes import OpenTrade, OutcomeRejected, close_trade, mark, marked_by_bars, open_trade, reject_fill
from agents.timestamps import to_micros
from schemas.events import BarClosed, OrderFilled, SignalRaised, TradeClosed

NONE, OPEN, CLOSED = "none", "open", "closed"


@dataclass(frozen=True, slots=True)
class TradeEffects:
    """Writes to the ``trades`` table and the open-trade index, and records to send."""

    trades: tuple[tuple[bytes, bytes], ...] = ()
    open_index: bytes | None = None  # new value of the symbol's open-trade index, None = unchanged
    outgoing: tuple[Outgoing, ...] = ()
    closed: tuple[TradeClosed, ...] = ()  # trades closed by this fill, for the worker's own state

    def as_effects(self) -> Effects:
        return Effects(outgoing=self.outgoing)


def _open_to_json(trade: OpenTrade) -> dict[str, Any]:
    doc = asdict(trade)
    for key in ("entry_ts", "last_bar_ts"):
        doc[key] = doc[key].isoformat() if doc[key] is not None else None
    return doc


def _open_from_json(doc: dict[str, Any]) -> OpenTrade:
    doc = dict(doc)
    for key in ("entry_ts", "last_bar_ts"):
        doc[key] = datetime.fromisoformat(doc[key]) if doc[key] is not None else None
    return OpenTrade(**doc)


def _load(raw: bytes | None) -> dict[str, Any] | None:
    return json.loads(raw) if raw is not None else None


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def signal_record(raw_signal: bytes) -> bytes:
    """The ``trades`` entry written when a signal is first decided."""
    return _dump({"state": NONE, "signal": base64.b64encode(raw_signal).decode(), "fills": []})


def open_index_add(raw: bytes | None, signal_id: str) -> bytes:
    ids = json.loads(raw) if raw else []
    if signal_id not in ids:
        ids.append(signal_id)
    return json.dumps(ids).encode()


def open_index_remove(raw: bytes | None, signal_id: str) -> bytes:
    ids = [i for i in (json.loads(raw) if raw else []) if i != signal_id]
    return json.dumps(ids).encode()


def open_ids(raw: bytes | None) -> list[str]:
    return json.loads(raw) if raw else []


def trade_closed(raw: bytes) -> bool:
    """The ``trades`` entry ``raw`` is of a closed trade (``False`` for bytes that are not an entry)."""
    try:
        return bool(_load(raw)["state"] == CLOSED)
    except (ValueError, KeyError, TypeError):  # json's errors are ValueErrors
        return False


@dataclass
class FillHandlers:
    base: Handlers

    def on_fill(self, src: Source, fill: OrderFilled, *, record: bytes | None, open_index: bytes | None,
                bars: bytes | None = None) -> TradeEffects:
        """``bars``: the symbol's ``symbol-state`` value; an exit's MAE/MFE come from its bars (``marked_by_bars``)."""
        doc = _load(record)
        state = doc["state"] if doc else NONE
        if doc and fill.event_id in doc["fills"]:  # redelivery: idempotent
            if state == CLOSED and fill.leg == "EXIT":
                return TradeEffects(outgoing=(Outgoing(self.base.settings.topic("outcomes"), fill.symbol.encode(),
                                                       base64.b64decode(doc["closed"])),))
            return TradeEffects()
        problem = reject_fill(fill, signal_known=doc is not None, trade=state)
        if problem is not None:
            return self._reject(src, problem)
        assert doc is not None
        try:
            if fill.leg == "ENTRY":
                signal = self.base.codec.decode(base64.b64decode(doc["signal"]))
                assert isinstance(signal, SignalRaised)
                trade = open_trade(signal, fill)
                new = {**doc, "state": OPEN, "fills": [*doc["fills"], fill.event_id], "open": _open_to_json(trade)}
                return TradeEffects(trades=((fill.signal_id.encode(), _dump(new)),),
                                    open_index=open_index_add(open_index, fill.signal_id))
            closed = close_trade(self._marked(_open_from_json(doc["open"]), bars, fill), fill, ts_init=self.base.clock())
        except OutcomeRejected as exc:
            return self._reject(src, exc)
        out = self.base._out(closed)
        new = {"state": CLOSED, "fills": [*doc["fills"], fill.event_id], "closed": base64.b64encode(out.value).decode()}
        return TradeEffects(trades=((fill.signal_id.encode(), _dump(new)),),
                            open_index=open_index_remove(open_index, fill.signal_id), outgoing=(out,), closed=(closed,))

    def on_bar(self, bar: BarClosed, records: dict[str, bytes | None]) -> TradeEffects:
        """Fold a closed bar into every open trade of its symbol (MAE/MFE)."""
        writes = []
        for signal_id, raw in records.items():
            doc = _load(raw)
            if not doc or doc["state"] != OPEN:
                continue
            before = _open_from_json(doc["open"])
            after = mark(before, bar)
            if after is not before:
                writes.append((signal_id.encode(), _dump({**doc, "open": _open_to_json(after)})))
        return TradeEffects(trades=tuple(writes))

    def _marked(self, trade: OpenTrade, bars: bytes | None, exit_fill: OrderFilled) -> OpenTrade:
        """``trade``'s excursions from the symbol's bars up to the exit (see ``agents.outcomes.marked_by_bars``)."""
        state = self.base.symbol_state_of(bars)
        if state is None or state.symbol != trade.symbol:
            return trade
        until = to_micros(exit_fill.ts_event)
        window = state.bars_until(until)
        return marked_by_bars(trade, window.ts, window.high, window.low, until=exit_fill.ts_event,
                              complete=state.holds_all_since(to_micros(trade.entry_ts)))

    def _reject(self, src: Source, exc: OutcomeRejected) -> TradeEffects:
        return TradeEffects(outgoing=self.base.reject(src, exc.kind, exc.reason).outgoing)
