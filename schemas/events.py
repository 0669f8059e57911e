"""Events of the rlsizer.v1 catalogue: frozen dataclasses mirroring ``schemas/*.avsc``.

Each class carries the Avro full name of its schema in ``schema_name``; a test
checks that the field names and order match the ``.avsc`` file. Values are
validated at construction, so an event that exists is an event that is valid:
decoding bad input raises ``ValueError`` subclasses which the stream layer turns
into ``EventRejected`` records.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, ClassVar, Final

NAMESPACE: Final = "rlsizer.v1"
SIDES: Final = ("BUY", "SELL")
POLICIES: Final = ("MODEL", "RULES", "FALLBACK")
LEGS: Final = ("ENTRY", "EXIT")
HEALTH_STATUSES: Final = ("OK", "WARN", "FAIL")
MULTIPLIER_MIN: Final = 0.25
MULTIPLIER_MAX: Final = 2.0


class InvalidEvent(ValueError):
    """An event value breaks its contract (NaN price, unknown side, ...)."""


# The earliest plausible time of an event. Every timestamp is microseconds since the epoch
# (Avro timestamp-micros): milliseconds or seconds put there by mistake (JavaScript's
# Date.now() is milliseconds) decode as January 1970, so anything before this is refused,
# with a reason that names the likely unit. Events validate themselves at construction, in
# every process (workers, reconciler, replay, bots on the adapter SDK), so the bound is read
# here, once, from the environment variable that ``streams.settings.Settings`` also declares
# (and passes to the processes it starts): RLSIZER_EARLIEST_EVENT_TIME, an ISO date or time.
EARLIEST_EVENT_TIME_ENV: Final = "RLSIZER_EARLIEST_EVENT_TIME"
DEFAULT_EARLIEST_EVENT_TIME: Final = "1990-01-01"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UTC: Final = timezone.utc
_LATEST_MICROS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=_UTC) - _EPOCH) // timedelta(microseconds=1)


def parse_earliest_event_time(text: str) -> datetime:
    """``text`` (``1990-01-01``, ``1990-01-01T00:00:00+00:00``; UTC when no offset is given) as a UTC datetime."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{EARLIEST_EVENT_TIME_ENV}={text!r} is not an ISO date or time, such as 1990-01-01") from None
    value = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if value < _EPOCH:
        raise ValueError(f"{EARLIEST_EVENT_TIME_ENV}={text!r} is before 1970-01-01: it would let a unit error through")
    return value


try:
    _earliest: datetime = parse_earliest_event_time(os.environ.get(EARLIEST_EVENT_TIME_ENV, DEFAULT_EARLIEST_EVENT_TIME))
except ValueError:  # refused, with the reason, by ``Settings`` (streams.settings) where a process reads its settings
    _earliest = parse_earliest_event_time(DEFAULT_EARLIEST_EVENT_TIME)


def earliest_event_time() -> datetime:
    """Timestamps before this are refused (``RLSIZER_EARLIEST_EVENT_TIME``, default 1990-01-01)."""
    return _earliest


def set_earliest_event_time(value: datetime) -> datetime:
    """Change the bound for this process (tests, embedding); returns the previous one."""
    global _earliest
    previous, _earliest = _earliest, parse_earliest_event_time(value.isoformat())
    return previous


def _implausible(name: str, value: datetime) -> InvalidEvent:
    """Why ``value`` (aware, before the earliest plausible time) cannot be a timestamp: the likely unit error."""
    micros = (value - _EPOCH) // timedelta(microseconds=1)
    earliest = (_earliest - _EPOCH) // timedelta(microseconds=1)
    stored = f"{name} {value.isoformat()} ({micros} microseconds since the epoch)"
    limit = f"is before {_earliest.date().isoformat()} ({EARLIEST_EVENT_TIME_ENV})"
    if earliest <= micros * 1_000 <= _LATEST_MICROS:
        return InvalidEvent(f"{stored} {limit}: it looks like milliseconds since the epoch in a timestamp-micros field "
                            f"(JavaScript's Date.now() is milliseconds): multiply by 1000")
    if earliest <= micros * 1_000_000 <= _LATEST_MICROS:
        return InvalidEvent(f"{stored} {limit}: it looks like seconds since the epoch in a timestamp-micros field: "
                            f"multiply by 1000000")
    return InvalidEvent(f"{stored} {limit}, not a plausible time for an event: timestamps are microseconds since "
                        f"1970-01-01 UTC (Avro timestamp-micros)")


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _ts(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEvent(f"{name} must be a timezone-aware datetime, got {value!r}")
    if value < _earliest:
        raise _implausible(name, value)


def _is_finite(value: object) -> bool:
    """A finite int or float that a double holds (an int beyond the double range is not)."""
    try:
        return isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:
        return False


def _positive(name: str, value: float) -> None:
    if not (_is_finite(value) and value > 0):
        raise InvalidEvent(f"{name} must be a finite number > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (_is_finite(value) and value >= 0):
        raise InvalidEvent(f"{name} must be a finite number >= 0, got {value!r}")


def _finite(name: str, value: float) -> None:
    if not _is_finite(value):
        raise InvalidEvent(f"{name} must be a finite number, got {value!r}")


def _unit_interval(name: str, value: float) -> None:
    if not (_is_finite(value) and 0 <= value <= 1):
        raise InvalidEvent(f"{name} must be a number in [0, 1], got {value!r}")


def _all_finite_numbers(values: Iterable[Any]) -> bool:
    """True when every value is a plain int or float and finite, checked at C speed.

    ``False`` means "not sure": the caller then checks value by value (``_finite``),
    which is the rule. A total of finite numbers is finite unless it overflows,
    and an infinity or NaN makes the total infinite or NaN: so a finite total
    proves every value finite. Subclasses (bool, numpy floats) and totals too
    large for a float give ``False``.
    """
    values = tuple(values)
    if not _PLAIN_NUMBERS.issuperset(map(type, values)):
        return False
    try:
        return math.isfinite(sum(values))
    except (OverflowError, ValueError):
        return False


_PLAIN_NUMBERS: Final = frozenset((int, float))


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidEvent(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _non_empty(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(f"{name} must be a non-empty string, got {value!r}")


def _freeze(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, MappingProxyType):
        object.__setattr__(obj, name, MappingProxyType(dict(value)))


_INF: Final = math.inf
# The events made or read per signal (SignalRaised, FeaturesComputed, SizeDecided)
# first check their usual values in one expression of exact types, without a call
# per field: a str with something left after strip(), a float ``f`` with
# ``0.0 < f < _INF`` (positive and finite: NaN fails every comparison), ... Each
# term implies the rule of the helper it stands for; when the expression is false
# (an error, or a value it is not sure of: an int, a subclass), the helpers run in
# their order and decide, with their messages (tests/unit/schemas/test_events_usual_values.py).


def _usual_event(e: Event) -> bool:
    """True when ``Event.__post_init__`` surely passes (False: not sure)."""
    return bool(
        type(e.event_id) is str and e.event_id.strip()
        and type(e.ts_event) is datetime and e.ts_event.tzinfo is _UTC and e.ts_event >= _earliest
        and type(e.ts_init) is datetime and e.ts_init.tzinfo is _UTC and e.ts_init >= _earliest
    )


def _order_sides(side: str, price: float, stop: float | None, target: float | None) -> None:
    """A stop beyond the price against the trade, a target beyond it with the trade (R is measured from the stop)."""
    buy = side == "BUY"
    if stop is not None and not (stop < price if buy else stop > price):
        raise InvalidEvent(
            f"stop_price {stop} is {'at or above' if buy else 'at or below'} price {price} for a {side}: a {side}'s stop "
            f"must be {'below' if buy else 'above'} its price (on the wrong side its risk, hence its R, means nothing)")
    if target is not None and not (target > price if buy else target < price):
        raise InvalidEvent(
            f"target_price {target} is {'at or below' if buy else 'at or above'} price {price} for a {side}: a "
            f"{side}'s target must be {'above' if buy else 'below'} its price")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries."""

    schema_name: ClassVar[str] = ""
    event_id: str = field(default_factory=new_event_id)
    ts_event: datetime
    ts_init: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _non_empty("event_id", self.event_id)
        _ts("ts_event", self.ts_event)
        _ts("ts_init", self.ts_init)


@dataclass(frozen=True, slots=True, kw_only=True)
class BarClosed(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.BarClosed"
    symbol: str
    interval: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _non_empty("symbol", self.symbol)
        _non_empty("interval", self.interval)
        for name in ("open", "high", "low", "close"):
            _positive(name, getattr(self, name))
        _non_negative("volume", self.volume)
        if self.high < max(self.open, self.close, self.low) or self.low > min(self.open, self.close):
            raise InvalidEvent(
                f"bar is inconsistent: high={self.high} low={self.low} open={self.open} close={self.close}"
            )
        for name in ("bid", "ask"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        for name in ("bid_size", "ask_size"):
            if getattr(self, name) is not None:
                _non_negative(name, getattr(self, name))
        if self.bid is not None and self.ask is not None and self.bid > self.ask:
            raise InvalidEvent(f"crossed quote: bid {self.bid} > ask {self.ask}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalRaised(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.SignalRaised"
    signal_id: str
    strategy_id: str
    symbol: str
    side: str
    price: float
    atr: float
    score: float = 0.0
    q_score: float = 0.5
    base_qty: float
    stop_price: float | None = None
    target_price: float | None = None
    adapter: str = "unknown"
    attrs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        stop, target = self.stop_price, self.target_price
        if not (
            _usual_event(self)
            and type(self.signal_id) is str and self.signal_id.strip()
            and type(self.strategy_id) is str and self.strategy_id.strip()
            and type(self.symbol) is str and self.symbol.strip()
            and self.side in SIDES
            and type(self.price) is float and 0.0 < self.price < _INF
            and type(self.atr) is float and 0.0 <= self.atr < _INF
            and type(self.score) is float and -_INF < self.score < _INF
            and type(self.q_score) is float and 0.0 <= self.q_score <= 1.0
            and type(self.base_qty) is float and 0.0 < self.base_qty < _INF
            and (stop is None or (type(stop) is float and 0.0 < stop < _INF
                                  and (stop < self.price if self.side == "BUY" else stop > self.price)))
            and (target is None or (type(target) is float and 0.0 < target < _INF
                                    and (target > self.price if self.side == "BUY" else target < self.price)))
        ):
            self._check()
        _freeze(self, "attrs")

    def _check(self) -> None:
        Event.__post_init__(self)
        _non_empty("signal_id", self.signal_id)
        _non_empty("strategy_id", self.strategy_id)
        _non_empty("symbol", self.symbol)
        _one_of("side", self.side, SIDES)
        _positive("price", self.price)
        _non_negative("atr", self.atr)
        _finite("score", self.score)
        _unit_interval("q_score", self.q_score)
        _positive("base_qty", self.base_qty)
        for name in ("stop_price", "target_price"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        _order_sides(self.side, self.price, self.stop_price, self.target_price)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeaturesComputed(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.FeaturesComputed"
    signal_id: str
    symbol: str
    strategy_id: str
    strategy_type: str
    feature_set: str
    features: Mapping[str, float]

    def __post_init__(self) -> None:
        if not (_usual_event(self) and type(self.signal_id) is str and self.signal_id.strip()):
            Event.__post_init__(self)
            _non_empty("signal_id", self.signal_id)
        if not _all_finite_numbers(self.features.values()):  # then find the first culprit, for the message
            for name, value in self.features.items():
                _finite(f"feature {name}", value)
        _freeze(self, "features")


@dataclass(frozen=True, slots=True, kw_only=True)
class SizeDecided(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.SizeDecided"
    signal_id: str
    symbol: str
    strategy_id: str
    multiplier: float
    qty: float
    policy: str
    reason: str
    model_version: str | None = None
    latency_us: int

    def __post_init__(self) -> None:
        if not (
            _usual_event(self)
            and type(self.signal_id) is str and self.signal_id.strip()
            and type(self.multiplier) is float and MULTIPLIER_MIN <= self.multiplier <= MULTIPLIER_MAX
            and type(self.qty) is float and 0.0 <= self.qty < _INF
            and self.policy in POLICIES
            and type(self.latency_us) is int and self.latency_us >= 0
        ):
            self._check()

    def _check(self) -> None:
        Event.__post_init__(self)
        _non_empty("signal_id", self.signal_id)
        _finite("multiplier", self.multiplier)
        if not MULTIPLIER_MIN <= self.multiplier <= MULTIPLIER_MAX:
            raise InvalidEvent(
                f"multiplier must be in [{MULTIPLIER_MIN}, {MULTIPLIER_MAX}], got {self.multiplier}"
            )
        _non_negative("qty", self.qty)
        _one_of("policy", self.policy, POLICIES)
        if self.latency_us < 0:
            raise InvalidEvent(f"latency_us must be >= 0, got {self.latency_us}")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.OrderFilled"
    signal_id: str
    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fee: float = 0.0
    leg: str
    exit_reason: str | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _non_empty("signal_id", self.signal_id)
        _non_empty("order_id", self.order_id)
        _one_of("side", self.side, SIDES)
        _positive("qty", self.qty)
        _positive("price", self.price)
        _non_negative("fee", self.fee)
        _one_of("leg", self.leg, LEGS)


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeClosed(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.TradeClosed"
    signal_id: str
    symbol: str
    strategy_id: str
    side: str
    qty: float
    entry_price: float
    exit_price: float
    entry_ts: datetime
    exit_ts: datetime
    pnl: float
    fees: float = 0.0
    r_multiple: float
    mae_r: float = 0.0
    mfe_r: float = 0.0
    exit_reason: str

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _one_of("side", self.side, SIDES)
        _positive("qty", self.qty)
        _positive("entry_price", self.entry_price)
        _positive("exit_price", self.exit_price)
        _ts("entry_ts", self.entry_ts)
        _ts("exit_ts", self.exit_ts)
        if self.exit_ts < self.entry_ts:
            raise InvalidEvent(f"exit_ts {self.exit_ts} is before entry_ts {self.entry_ts}")
        for name in ("pnl", "r_multiple", "mae_r", "mfe_r"):
            _finite(name, getattr(self, name))
        _non_negative("fees", self.fees)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPublished(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.ModelPublished"
    model_name: str
    version: str
    artifact_uri: str
    manifest_uri: str
    sha256: str
    signature: str
    feature_set: str
    alias: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _non_empty("model_name", self.model_name)
        _non_empty("version", self.version)
        _freeze(self, "metrics")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChecked(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.HealthChecked"
    component: str
    check: str
    status: str
    detail: str
    action: str | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _one_of("status", self.status, HEALTH_STATUSES)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRejected(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.EventRejected"
    source_topic: str
    source_partition: int
    source_offset: int
    raw_key: bytes | None = None
    raw_value: bytes | None = None
    reason: str
    error_type: str


EVENT_TYPES: Final[tuple[type[Event], ...]] = (
    BarClosed,
    SignalRaised,
    FeaturesComputed,
    SizeDecided,
    OrderFilled,
    TradeClosed,
    ModelPublished,
    HealthChecked,
    EventRejected,
)
EVENT_BY_SCHEMA_NAME: Final[dict[str, type[Event]]] = {t.schema_name: t for t in EVENT_TYPES}


def field_names(event_type: type[Event]) -> tuple[str, ...]:
    """Field names in declaration order (the order of the Avro record)."""
    return tuple(f.name for f in fields(event_type))
