"""Events of the rlsizer.v1 catalogue: frozen dataclasses mirroring ``schemas/*.avsc``.

Each class carries the Avro full name of its schema in ``schema_name``; a test
checks that the field names and order match the ``.avsc`` file. Values are
validated at construction, so an event that exists is an event that is valid:
decoding bad input raises ``ValueError`` subclasses which the stream layer turns
into ``EventRejected`` records.

Each field declares its rule once, in its metadata (``field(metadata=POSITIVE)``),
and a class names its cross-field rules in ``cross_rules``; ``@validated`` makes
from them the check with its messages, the fast path of ``__post_init__`` and the
column-wise check of a replay (``schemas.rules``, which holds the vocabulary).
A field without metadata has no rule beyond its Avro type.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import ClassVar, Final

from schemas.rules import (
    BAR_RANGE,
    COUNT,
    EXIT_AFTER_ENTRY,
    FINITE,
    FINITE_VALUES,
    NON_EMPTY,
    NON_NEGATIVE,
    ONE_OF_ENUM,
    PLAUSIBLE_TIME,
    POSITIVE,
    QUOTE_NOT_CROSSED,
    STOP_AND_TARGET_SIDES,
    UNIT_INTERVAL,
    CrossRule,
    InvalidEvent,
    RuleTable,
    earliest_event_time,
    in_range,
    optional,
    parse_earliest_event_time,
    set_earliest_event_time,
    validated,
)

NAMESPACE: Final = "rlsizer.v1"
MULTIPLIER_MIN: Final = 0.25
MULTIPLIER_MAX: Final = 2.0


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries."""

    schema_name: ClassVar[str] = ""
    cross_rules: ClassVar[tuple[CrossRule, ...]] = ()
    rules: ClassVar[RuleTable]  # made by @validated from the fields' metadata and cross_rules
    event_id: str = field(default_factory=new_event_id, metadata=NON_EMPTY)
    ts_event: datetime = field(metadata=PLAUSIBLE_TIME)
    ts_init: datetime = field(default_factory=utc_now, metadata=PLAUSIBLE_TIME)

    def __post_init__(self) -> None:  # replaced by @validated: the rules' fast path, then their check
        type(self).rules.check(self)


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class BarClosed(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.BarClosed"
    cross_rules: ClassVar[tuple[CrossRule, ...]] = (BAR_RANGE, QUOTE_NOT_CROSSED)
    symbol: str = field(metadata=NON_EMPTY)
    interval: str = field(metadata=NON_EMPTY)
    open: float = field(metadata=POSITIVE)
    high: float = field(metadata=POSITIVE)
    low: float = field(metadata=POSITIVE)
    close: float = field(metadata=POSITIVE)
    volume: float = field(metadata=NON_NEGATIVE)
    bid: float | None = field(default=None, metadata=optional(POSITIVE))
    ask: float | None = field(default=None, metadata=optional(POSITIVE))
    bid_size: float | None = field(default=None, metadata=optional(NON_NEGATIVE))
    ask_size: float | None = field(default=None, metadata=optional(NON_NEGATIVE))


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class SignalRaised(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.SignalRaised"
    cross_rules: ClassVar[tuple[CrossRule, ...]] = (STOP_AND_TARGET_SIDES,)
    signal_id: str = field(metadata=NON_EMPTY)
    strategy_id: str = field(metadata=NON_EMPTY)
    symbol: str = field(metadata=NON_EMPTY)
    side: str = field(metadata=ONE_OF_ENUM)
    price: float = field(metadata=POSITIVE)
    atr: float = field(metadata=NON_NEGATIVE)
    score: float = field(default=0.0, metadata=FINITE)
    q_score: float = field(default=0.5, metadata=UNIT_INTERVAL)
    base_qty: float = field(metadata=POSITIVE)
    stop_price: float | None = field(default=None, metadata=optional(POSITIVE))
    target_price: float | None = field(default=None, metadata=optional(POSITIVE))
    adapter: str = "unknown"
    attrs: Mapping[str, str] = field(default_factory=dict)


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class FeaturesComputed(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.FeaturesComputed"
    signal_id: str = field(metadata=NON_EMPTY)
    symbol: str
    strategy_id: str
    strategy_type: str
    feature_set: str
    features: Mapping[str, float] = field(metadata=FINITE_VALUES)


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class SizeDecided(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.SizeDecided"
    signal_id: str = field(metadata=NON_EMPTY)
    symbol: str
    strategy_id: str
    multiplier: float = field(metadata=in_range(MULTIPLIER_MIN, MULTIPLIER_MAX))
    qty: float = field(metadata=NON_NEGATIVE)
    policy: str = field(metadata=ONE_OF_ENUM)
    reason: str
    model_version: str | None = None
    latency_us: int = field(metadata=COUNT)


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.OrderFilled"
    signal_id: str = field(metadata=NON_EMPTY)
    order_id: str = field(metadata=NON_EMPTY)
    symbol: str
    side: str = field(metadata=ONE_OF_ENUM)
    qty: float = field(metadata=POSITIVE)
    price: float = field(metadata=POSITIVE)
    fee: float = field(default=0.0, metadata=NON_NEGATIVE)
    leg: str = field(metadata=ONE_OF_ENUM)
    exit_reason: str | None = None


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class TradeClosed(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.TradeClosed"
    cross_rules: ClassVar[tuple[CrossRule, ...]] = (EXIT_AFTER_ENTRY,)
    signal_id: str
    symbol: str
    strategy_id: str
    side: str = field(metadata=ONE_OF_ENUM)
    qty: float = field(metadata=POSITIVE)
    entry_price: float = field(metadata=POSITIVE)
    exit_price: float = field(metadata=POSITIVE)
    entry_ts: datetime = field(metadata=PLAUSIBLE_TIME)
    exit_ts: datetime = field(metadata=PLAUSIBLE_TIME)
    pnl: float = field(metadata=FINITE)
    fees: float = field(default=0.0, metadata=NON_NEGATIVE)
    r_multiple: float = field(metadata=FINITE)
    mae_r: float = field(default=0.0, metadata=FINITE)
    mfe_r: float = field(default=0.0, metadata=FINITE)
    exit_reason: str


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPublished(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.ModelPublished"
    model_name: str = field(metadata=NON_EMPTY)
    version: str = field(metadata=NON_EMPTY)
    artifact_uri: str
    manifest_uri: str
    sha256: str
    signature: str
    feature_set: str
    alias: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@validated
@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChecked(Event):
    schema_name: ClassVar[str] = f"{NAMESPACE}.HealthChecked"
    component: str
    check: str
    status: str = field(metadata=ONE_OF_ENUM)
    detail: str
    action: str | None = None


@validated
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
SIDES: Final = SignalRaised.rules.symbols("side")  # the symbols of its .avsc enum
POLICIES: Final = SizeDecided.rules.symbols("policy")
LEGS: Final = OrderFilled.rules.symbols("leg")
HEALTH_STATUSES: Final = HealthChecked.rules.symbols("status")


def field_names(event_type: type[Event]) -> tuple[str, ...]:
    """Field names in declaration order (the order of the Avro record)."""
    return tuple(f.name for f in fields(event_type))


__all__ = [
    "EVENT_BY_SCHEMA_NAME",
    "EVENT_TYPES",
    "HEALTH_STATUSES",
    "LEGS",
    "MULTIPLIER_MAX",
    "MULTIPLIER_MIN",
    "NAMESPACE",
    "POLICIES",
    "SIDES",
    "BarClosed",
    "Event",
    "EventRejected",
    "FeaturesComputed",
    "HealthChecked",
    "InvalidEvent",
    "ModelPublished",
    "OrderFilled",
    "SignalRaised",
    "SizeDecided",
    "TradeClosed",
    "earliest_event_time",
    "field_names",
    "new_event_id",
    "parse_earliest_event_time",
    "set_earliest_event_time",
    "utc_now",
]
