"""Paper execution of reference signals on bars: pure, deterministic, conservative.

Rules (a signal is raised at the close of bar t):

- **Entry** at the open of bar t+1, moved against us by ``slippage_bps``. If that
  open is already at or beyond the signal's stop or target, the order is not
  placed (no fill): the bracket would be meaningless.
- **Stop and target** are the signal's absolute price levels (what the bot
  published is what it trades). From the entry bar on, each bar is checked:
  a later bar that *opens* through a level exits at that open (a gap); otherwise a
  bar whose range touches a level exits at the level. When one bar's range holds
  both the stop and the target we cannot know which came first, so the **stop
  wins** (conservative: it never flatters the strategy).
- **Time exit** at the close of the ``max_hold_bars``-th bar held (the entry bar
  counts as the first).
- Market exits (stop, time, ``manual`` at the end of the data) pay slippage; the
  target is a limit order and fills at its price (or a better gap open) without.
- Fees are ``fee_per_unit * qty`` per fill.

Fill times: the entry at the entry bar's start; exits at the end (close time) of
the bar they happen in, the first moment the adapter knows of them. Order and
event ids derive from the signal id, so a replay emits identical fills.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from schemas.events import OrderFilled

_FILL_NAMESPACE: Final = uuid.UUID("6f0c9a52-2d43-4c39-9a55-6d8f1f0b7a11")


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperConfig:
    slippage_bps: float = 1.0
    fee_per_unit: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.slippage_bps < 10_000:
            raise ValueError(f"slippage_bps must be in [0, 10000), got {self.slippage_bps}")
        if self.fee_per_unit < 0:
            raise ValueError(f"fee_per_unit must be >= 0, got {self.fee_per_unit}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperBar:
    start: datetime
    end: datetime
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    signal_id: str
    symbol: str
    side: str
    qty: float
    stop_price: float
    target_price: float
    max_hold_bars: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    order: Order
    entry_price: float
    entry_ts: datetime
    bars_held: int = 0

    @property
    def sign(self) -> float:
        return 1.0 if self.order.side == "BUY" else -1.0


def _adverse(price: float, side: str, cfg: PaperConfig) -> float:
    """A market fill ``side`` pays slippage: buys higher, sells lower."""
    slip = cfg.slippage_bps / 10_000
    return price * (1 + slip) if side == "BUY" else price * (1 - slip)


def _fill(
    order: Order, *, leg: str, side: str, price: float, ts: datetime, cfg: PaperConfig, reason: str | None
) -> OrderFilled:
    order_id = f"{order.signal_id}:{leg.lower()}"
    return OrderFilled(
        event_id=str(uuid.uuid5(_FILL_NAMESPACE, order_id)),
        ts_event=ts,
        signal_id=order.signal_id,
        order_id=order_id,
        symbol=order.symbol,
        side=side,
        qty=order.qty,
        price=price,
        fee=cfg.fee_per_unit * order.qty,
        leg=leg,
        exit_reason=reason,
    )


def enter(order: Order, bar: PaperBar, cfg: PaperConfig) -> tuple[Position, OrderFilled] | None:
    """Fill the entry at ``bar``'s open, or ``None`` if the open is already through the stop or target."""
    sign = 1.0 if order.side == "BUY" else -1.0
    if sign * (bar.open - order.stop_price) <= 0 or sign * (order.target_price - bar.open) <= 0:
        return None
    price = _adverse(bar.open, order.side, cfg)
    fill = _fill(order, leg="ENTRY", side=order.side, price=price, ts=bar.start, cfg=cfg, reason=None)
    return Position(order=order, entry_price=price, entry_ts=bar.start), fill


def _exit_side(position: Position) -> str:
    return "SELL" if position.order.side == "BUY" else "BUY"


def exit_now(position: Position, bar: PaperBar, cfg: PaperConfig, reason: str = "manual") -> OrderFilled:
    """A market exit at ``bar``'s close (time exits, end of data)."""
    side = _exit_side(position)
    return _fill(
        position.order, leg="EXIT", side=side, price=_adverse(bar.close, side, cfg), ts=bar.end, cfg=cfg, reason=reason
    )


def step(position: Position, bar: PaperBar, cfg: PaperConfig) -> tuple[Position, OrderFilled | None]:
    """Advance an open position through ``bar`` (the entry bar included); an exit fill closes it."""
    o, s = position.order, position.sign
    side = _exit_side(position)
    first = position.bars_held == 0
    if not first and s * (bar.open - o.stop_price) <= 0:
        return position, _fill(
            o, leg="EXIT", side=side, price=_adverse(bar.open, side, cfg), ts=bar.end, cfg=cfg, reason="stop"
        )
    if not first and s * (bar.open - o.target_price) >= 0:
        return position, _fill(o, leg="EXIT", side=side, price=bar.open, ts=bar.end, cfg=cfg, reason="target")
    worst, best = (bar.low, bar.high) if s > 0 else (bar.high, bar.low)
    if s * (worst - o.stop_price) <= 0:  # stop first when both are inside the range
        return position, _fill(
            o, leg="EXIT", side=side, price=_adverse(o.stop_price, side, cfg), ts=bar.end, cfg=cfg, reason="stop"
        )
    if s * (best - o.target_price) >= 0:
        return position, _fill(o, leg="EXIT", side=side, price=o.target_price, ts=bar.end, cfg=cfg, reason="target")
    held = replace(position, bars_held=position.bars_held + 1)
    if held.bars_held >= o.max_hold_bars:
        return held, exit_now(held, bar, cfg, reason="time")
    return held, None
