"""The rules an event's values must keep: each written once, and the three forms made from it.

An event declares each field's rule once, in the field's metadata
(``price: float = field(metadata=POSITIVE)``), and names the few rules that read
several fields in ``cross_rules``; ``validated`` makes the class's ``RuleTable``
from that declaration. The vocabulary:

=================  ==============================================================
``NON_EMPTY``      a ``str`` with something left after ``strip()``
``PLAUSIBLE_TIME`` a timezone-aware ``datetime`` at or after the earliest plausible
                   event time (a unit error reads as 1970: the message names it)
``POSITIVE``       a finite number > 0
``NON_NEGATIVE``   a finite number >= 0
``FINITE``         a finite number
``UNIT_INTERVAL``  a number in [0, 1]
``in_range(a, b)`` a finite number in [a, b]
``ONE_OF_ENUM``    one of the symbols of the field's enum in its ``.avsc``
``COUNT``          not below zero (an integer count)
``FINITE_VALUES``  a map whose values are all finite numbers
``optional(r)``    None, or what ``r`` accepts
=================  ==============================================================

and the cross-field rules ``BAR_RANGE`` (high and low bound open and close),
``QUOTE_NOT_CROSSED`` (bid <= ask), ``EXIT_AFTER_ENTRY`` and ``STOP_AND_TARGET_SIDES``
(a BUY's stop below its price and target above it, a SELL's the other way round).

Each rule holds, side by side, the three forms of its one condition, and the table
makes from them:

* the scalar check (``RuleTable.check``): the rules in field order, each cross-field
  rule right after the last field it reads; the first one broken raises
  ``InvalidEvent`` with its message. This is the authority on validity and reasons.
* the fast path (the class's ``__post_init__``): one generated boolean expression of
  every rule's ``usual`` form -- exact types and a comparison or two, no call per
  field -- that is true only for values the check surely accepts. When it is false
  (an error, or a value it is not sure of: an int where a float is usual, a str
  subclass, a datetime in another zone) the scalar check runs and decides.
* the column-wise check for replay (``RuleTable.surely_valid``): every rule's
  ``column`` form on the Arrow columns of a decoded batch; True only for rows the
  scalar check accepts (a False row goes through it, which accepts it or names why).

A ``usual`` or ``column`` form may be stricter than its check, never looser: the
tests (tests/unit/schemas/test_rules.py) hold every rule to that, and every
declared rule to its message.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from schemas.catalog import enum_symbols


class InvalidEvent(ValueError):
    """An event value breaks its contract (NaN price, unknown side, ...)."""


Columns = Mapping[str, pa.Array]
Mask = npt.NDArray[np.bool_]  # bool[n]: one verdict per row
Const = Callable[[Any], str]  # names a value for generated source (see ``_fast_path``)

# Every timestamp is microseconds since the epoch (Avro timestamp-micros).
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)
LATEST_MICROS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // MICROSECOND
_UTC: Final = UTC
_INF: Final = math.inf
_PLAIN_NUMBERS: Final = frozenset((int, float))
_PLAIN_MAPS: Final = frozenset((dict, MappingProxyType))


# --- the earliest plausible time of an event ------------------------------------------------
# Milliseconds or seconds put in a timestamp-micros field by mistake (JavaScript's Date.now()
# is milliseconds) decode as January 1970, so anything before this bound is refused, with a
# reason that names the likely unit. Events validate themselves at construction, in every
# process (workers, reconciler, replay, bots on the adapter SDK), so the bound is read here,
# once, from the environment variable that ``config.settings.Settings`` also declares (and
# passes to the processes it starts): RLSIZER_EARLIEST_EVENT_TIME, an ISO date or time.
EARLIEST_EVENT_TIME_ENV: Final = "RLSIZER_EARLIEST_EVENT_TIME"
DEFAULT_EARLIEST_EVENT_TIME: Final = "1990-01-01"


def parse_earliest_event_time(text: str) -> datetime:
    """``text`` (``1990-01-01``, ``1990-01-01T00:00:00+00:00``; UTC when no offset is given) as a UTC datetime."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{EARLIEST_EVENT_TIME_ENV}={text!r} is not an ISO date or time, such as 1990-01-01") from None
    value = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if value < EPOCH:
        raise ValueError(f"{EARLIEST_EVENT_TIME_ENV}={text!r} is before 1970-01-01: it would let a unit error through")
    return value


try:
    _earliest: datetime = parse_earliest_event_time(
        os.environ.get(EARLIEST_EVENT_TIME_ENV, DEFAULT_EARLIEST_EVENT_TIME)
    )
except ValueError:  # refused, with the reason, by ``Settings`` (config.settings) where a process reads its settings
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
    micros = (value - EPOCH) // MICROSECOND
    earliest = (_earliest - EPOCH) // MICROSECOND
    stored = f"{name} {value.isoformat()} ({micros} microseconds since the epoch)"
    limit = f"is before {_earliest.date().isoformat()} ({EARLIEST_EVENT_TIME_ENV})"
    if earliest <= micros * 1_000 <= LATEST_MICROS:
        return InvalidEvent(
            f"{stored} {limit}: it looks like milliseconds since the epoch in a timestamp-micros field "
            f"(JavaScript's Date.now() is milliseconds): multiply by 1000"
        )
    if earliest <= micros * 1_000_000 <= LATEST_MICROS:
        return InvalidEvent(
            f"{stored} {limit}: it looks like seconds since the epoch in a timestamp-micros field: multiply by 1000000"
        )
    return InvalidEvent(
        f"{stored} {limit}, not a plausible time for an event: timestamps are microseconds since "
        f"1970-01-01 UTC (Avro timestamp-micros)"
    )


# --- what the forms share -------------------------------------------------------------------


def _is_finite(value: object) -> bool:
    """A finite int or float that a double holds (an int beyond the double range is not)."""
    try:
        return isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:
        return False


def _finite(name: str, value: Any) -> None:
    if not _is_finite(value):
        raise InvalidEvent(f"{name} must be a finite number, got {value!r}")


def _all_finite_numbers(values: Iterable[Any]) -> bool:
    """True when every value is a plain int or float and finite, checked at C speed.

    ``False`` means "not sure". A total of finite numbers is finite unless it
    overflows, and an infinity or NaN makes the total infinite or NaN: so a finite
    total proves every value finite. Subclasses (bool, numpy floats) and totals too
    large for a float give ``False``.
    """
    values = tuple(values)
    if not _PLAIN_NUMBERS.issuperset(map(type, values)):
        return False
    try:
        return math.isfinite(sum(values))
    except (OverflowError, ValueError):
        return False


def _rows(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _num(columns: Columns, name: str) -> npt.NDArray[np.float64]:
    """Values as float64, nulls as NaN."""
    return np.asarray(columns[name].to_numpy(zero_copy_only=False), dtype=np.float64)


def _null(columns: Columns, name: str) -> Mask:
    return np.asarray(columns[name].is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _micros(columns: Columns, name: str) -> npt.NDArray[np.int64]:
    """A timestamp column (naive UTC, as decoded) as int64 microseconds since the epoch."""
    return np.asarray(columns[name].cast(pa.int64()).to_numpy(zero_copy_only=False))


def _is_in(columns: Columns, name: str, allowed: tuple[str, ...]) -> Mask:
    return np.asarray(
        pc.fill_null(pc.is_in(columns[name], pa.array(allowed, pa.string())), False).to_numpy(zero_copy_only=False),
        bool,
    )


def _printable(strings: pa.Array) -> Mask:
    """bool[n]: the string holds a character in ``!``..``~`` (null: False), so ``str.strip()`` leaves something.

    Most strings (ids, symbols) start with one: their first byte decides; the regex
    reads only the others.
    """
    ok = _first_byte_printable(strings)
    if ok is None:
        return _any_printable(strings)
    rest = np.flatnonzero(~ok)
    if len(rest):
        ok[rest] = _any_printable(strings.take(pa.array(rest)))
    return ok


def _any_printable(strings: pa.Array) -> Mask:
    """bool[n]: the string holds a character in ``!``..``~`` anywhere (null: False)."""
    return np.asarray(
        pc.fill_null(pc.match_substring_regex(strings, "[!-~]"), False).to_numpy(zero_copy_only=False), bool
    )


def _first_byte_printable(strings: pa.Array) -> Mask | None:
    """bool[n]: the string's first byte is in ``!``..``~`` (empty or null: False); None if ``strings`` is not a string array."""
    if not isinstance(strings, (pa.StringArray, pa.LargeStringArray)):
        return None
    n = len(strings)
    _, offsets_buffer, data_buffer = strings.buffers()
    width = np.int32 if isinstance(strings, pa.StringArray) else np.int64
    offsets: npt.NDArray[np.signedinteger[Any]] = np.frombuffer(
        offsets_buffer, width, n + 1, strings.offset * np.dtype(width).itemsize
    )
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    filled = offsets[1:] > starts
    first = data[np.where(filled, starts, 0)] if len(data) else np.zeros(n, np.uint8)
    ok: Mask = filled & (first >= 0x21) & (first <= 0x7E)
    if strings.null_count:
        ok &= strings.is_valid().to_numpy(zero_copy_only=False)
    return ok


# --- the vocabulary: one rule of one field ----------------------------------------------------


class Rule(ABC):
    """One field's rule in its three forms: ``check`` (the authority), ``usual`` and ``column`` (never looser)."""

    @abstractmethod
    def check(self, name: str, value: Any) -> None:
        """Raise ``InvalidEvent`` with the message when ``value`` of field ``name`` breaks the rule."""

    @abstractmethod
    def usual(self, v: str, const: Const) -> str:
        """A Python expression over the variable ``v``, true only when ``check`` surely passes; it never raises."""

    @abstractmethod
    def column(self, columns: Columns, name: str) -> Mask:
        """bool[n]: the rows of column ``name`` that ``check`` surely accepts (False: not sure)."""

    def resolve(self, record: str, field: str) -> Rule:
        """The rule of ``field`` in the event ``record`` (what a declaration stands for there)."""
        return self

    def __repr__(self) -> str:
        return type(self).__name__


class _NonEmpty(Rule):
    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidEvent(f"{name} must be a non-empty string, got {value!r}")

    def usual(self, v: str, const: Const) -> str:
        return f"(type({v}) is str and {v}.strip() != '')"

    def column(self, columns: Columns, name: str) -> Mask:
        return _printable(columns[name])  # others (whitespace beyond ASCII, say) go to the check


class _PlausibleTime(Rule):
    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise InvalidEvent(f"{name} must be a timezone-aware datetime, got {value!r}")
        if value < _earliest:
            raise _implausible(name, value)

    def usual(self, v: str, const: Const) -> str:  # _earliest: this module's, read at each call
        return f"(type({v}) is datetime and {v}.tzinfo is _UTC and {v} >= _earliest)"

    def column(self, columns: Columns, name: str) -> Mask:  # decoded timestamps are always UTC
        return _micros(columns, name) >= (_earliest - EPOCH) // MICROSECOND


class _Positive(Rule):
    def check(self, name: str, value: Any) -> None:
        if not (_is_finite(value) and value > 0):
            raise InvalidEvent(f"{name} must be a finite number > 0, got {value!r}")

    def usual(self, v: str, const: Const) -> str:  # NaN fails every comparison
        return f"(type({v}) is float and 0.0 < {v} < _INF)"

    def column(self, columns: Columns, name: str) -> Mask:
        v = _num(columns, name)
        return np.isfinite(v) & (v > 0)


class _NonNegative(Rule):
    def check(self, name: str, value: Any) -> None:
        if not (_is_finite(value) and value >= 0):
            raise InvalidEvent(f"{name} must be a finite number >= 0, got {value!r}")

    def usual(self, v: str, const: Const) -> str:
        return f"(type({v}) is float and 0.0 <= {v} < _INF)"

    def column(self, columns: Columns, name: str) -> Mask:
        v = _num(columns, name)
        return np.isfinite(v) & (v >= 0)


class _Finite(Rule):
    def check(self, name: str, value: Any) -> None:
        _finite(name, value)

    def usual(self, v: str, const: Const) -> str:
        return f"(type({v}) is float and -_INF < {v} < _INF)"

    def column(self, columns: Columns, name: str) -> Mask:
        return np.isfinite(_num(columns, name))


class _UnitInterval(Rule):
    def check(self, name: str, value: Any) -> None:
        if not (_is_finite(value) and 0 <= value <= 1):
            raise InvalidEvent(f"{name} must be a number in [0, 1], got {value!r}")

    def usual(self, v: str, const: Const) -> str:
        return f"(type({v}) is float and 0.0 <= {v} <= 1.0)"

    def column(self, columns: Columns, name: str) -> Mask:
        v = _num(columns, name)
        return np.isfinite(v) & (v >= 0) & (v <= 1)


@dataclass(frozen=True, repr=False)
class _InRange(Rule):
    low: float
    high: float

    def check(self, name: str, value: Any) -> None:
        _finite(name, value)
        if not self.low <= value <= self.high:
            raise InvalidEvent(f"{name} must be in [{self.low}, {self.high}], got {value}")

    def usual(self, v: str, const: Const) -> str:
        return f"(type({v}) is float and {const(self.low)} <= {v} <= {const(self.high)})"

    def column(self, columns: Columns, name: str) -> Mask:
        v = _num(columns, name)
        return np.isfinite(v) & (v >= self.low) & (v <= self.high)

    def __repr__(self) -> str:
        return f"in_range({self.low}, {self.high})"


@dataclass(frozen=True, repr=False)
class _OneOf(Rule):
    allowed: tuple[str, ...]

    def check(self, name: str, value: Any) -> None:
        if value not in self.allowed:
            raise InvalidEvent(f"{name} must be one of {', '.join(self.allowed)}, got {value!r}")

    def usual(self, v: str, const: Const) -> str:  # a str in a frozenset: never raises, unlike `in` a tuple of anything
        return f"(type({v}) is str and {v} in {const(frozenset(self.allowed))})"

    def column(self, columns: Columns, name: str) -> Mask:
        return _is_in(columns, name, self.allowed)

    def __repr__(self) -> str:
        return f"one_of({', '.join(self.allowed)})"


@dataclass(frozen=True, repr=False)
class _OneOfEnum(_OneOf):
    """``_OneOf`` the symbols of the field's enum in its ``.avsc``, read by ``validated`` (``resolve``)."""

    allowed: tuple[str, ...] = ()

    def resolve(self, record: str, field: str) -> Rule:
        return _OneOf(enum_symbols(record, field))


class _Count(Rule):
    def check(self, name: str, value: Any) -> None:
        if value < 0:
            raise InvalidEvent(f"{name} must be >= 0, got {value}")

    def usual(self, v: str, const: Const) -> str:
        return f"(type({v}) is int and {v} >= 0)"

    def column(self, columns: Columns, name: str) -> Mask:
        return np.asarray(columns[name].to_numpy(zero_copy_only=False)) >= 0


@dataclass(frozen=True, repr=False)
class _FiniteValues(Rule):
    label: str  # the message names a value ``f"{label} {key}"``

    def check(self, name: str, value: Any) -> None:
        for key, item in value.items():
            _finite(f"{self.label} {key}", item)

    def usual(self, v: str, const: Const) -> str:
        return f"(type({v}) in {const(_PLAIN_MAPS)} and _all_finite_numbers({v}.values()))"

    def column(self, columns: Columns, name: str) -> Mask:
        array = columns[name]
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        offsets = array.offsets.to_numpy()
        bad = ~np.isfinite(np.asarray(array.items.to_numpy(zero_copy_only=False), dtype=np.float64))
        per_row = (
            np.add.reduceat(np.append(bad, False).astype(np.int64), offsets[:-1])
            if len(offsets) > 1
            else np.zeros(0, np.int64)
        )
        per_row = np.where(np.diff(offsets) > 0, per_row, 0)
        return np.asarray((per_row == 0) & ~_null(columns, name), bool)


@dataclass(frozen=True, repr=False)
class _Optional(Rule):
    inner: Rule

    def check(self, name: str, value: Any) -> None:
        if value is not None:
            self.inner.check(name, value)

    def usual(self, v: str, const: Const) -> str:
        return f"({v} is None or {self.inner.usual(v, const)})"

    def column(self, columns: Columns, name: str) -> Mask:
        return _null(columns, name) | self.inner.column(columns, name)

    def resolve(self, record: str, field: str) -> Rule:
        return _Optional(self.inner.resolve(record, field))

    def __repr__(self) -> str:
        return f"optional({self.inner!r})"


RULE: Final = "rule"  # the key of a field's rule in its metadata


def _declared(rule: Rule) -> Mapping[str, Rule]:
    return MappingProxyType({RULE: rule})


NON_EMPTY: Final = _declared(_NonEmpty())
PLAUSIBLE_TIME: Final = _declared(_PlausibleTime())
POSITIVE: Final = _declared(_Positive())
NON_NEGATIVE: Final = _declared(_NonNegative())
FINITE: Final = _declared(_Finite())
UNIT_INTERVAL: Final = _declared(_UnitInterval())
ONE_OF_ENUM: Final = _declared(_OneOfEnum())
COUNT: Final = _declared(_Count())
FINITE_VALUES: Final = _declared(_FiniteValues("feature"))


def in_range(low: float, high: float) -> Mapping[str, Rule]:
    return _declared(_InRange(low, high))


def optional(declared: Mapping[str, Rule]) -> Mapping[str, Rule]:
    return _declared(_Optional(declared[RULE]))


# --- the cross-field rules ----------------------------------------------------------------


@dataclass(frozen=True)
class CrossRule:
    """A rule over several fields, in the same three forms as a ``Rule`` (``usual`` over variables named as the fields)."""

    name: str
    fields: tuple[str, ...]
    check: Callable[..., None]  # the fields' values, in ``fields`` order
    usual: str  # runs after the fields' own ``usual`` forms passed: their types are the usual ones
    column: Callable[[Columns], Mask]


def _bar_range(open: float, high: float, low: float, close: float) -> None:
    if high < max(open, close, low) or low > min(open, close):
        raise InvalidEvent(f"bar is inconsistent: high={high} low={low} open={open} close={close}")


def _bar_range_columns(c: Columns) -> Mask:
    o, h, low, close = (_num(c, n) for n in ("open", "high", "low", "close"))
    return np.asarray((h >= np.maximum(np.maximum(o, close), low)) & (low <= np.minimum(o, close)), bool)


def _quote(bid: float | None, ask: float | None) -> None:
    if bid is not None and ask is not None and bid > ask:
        raise InvalidEvent(f"crossed quote: bid {bid} > ask {ask}")


def _quote_columns(c: Columns) -> Mask:
    return np.asarray(_null(c, "bid") | _null(c, "ask") | (_num(c, "bid") <= _num(c, "ask")), bool)


def _exit_after_entry(entry_ts: datetime, exit_ts: datetime) -> None:
    if exit_ts < entry_ts:
        raise InvalidEvent(f"exit_ts {exit_ts} is before entry_ts {entry_ts}")


def _stop_and_target_sides(side: str, price: float, stop_price: float | None, target_price: float | None) -> None:
    """A stop beyond the price against the trade, a target beyond it with the trade (R is measured from the stop)."""
    buy = side == "BUY"
    stop, target = stop_price, target_price
    if stop is not None and not (stop < price if buy else stop > price):
        raise InvalidEvent(
            f"stop_price {stop} is {'at or above' if buy else 'at or below'} price {price} for a {side}: a {side}'s stop "
            f"must be {'below' if buy else 'above'} its price (on the wrong side its risk, hence its R, means nothing)"
        )
    if target is not None and not (target > price if buy else target < price):
        raise InvalidEvent(
            f"target_price {target} is {'at or below' if buy else 'at or above'} price {price} for a {side}: a "
            f"{side}'s target must be {'above' if buy else 'below'} its price"
        )


def _stop_and_target_sides_columns(c: Columns) -> Mask:
    price, stop, target = _num(c, "price"), _num(c, "stop_price"), _num(c, "target_price")
    buy, sell = _is_in(c, "side", ("BUY",)), _is_in(c, "side", ("SELL",))
    stop_ok = _null(c, "stop_price") | (buy & (stop < price)) | (sell & (stop > price))
    target_ok = _null(c, "target_price") | (buy & (target > price)) | (sell & (target < price))
    return np.asarray(stop_ok & target_ok, bool)


BAR_RANGE: Final = CrossRule(
    "bar range",
    ("open", "high", "low", "close"),
    _bar_range,
    "high >= open and high >= close and high >= low and low <= open and low <= close",
    _bar_range_columns,
)
QUOTE_NOT_CROSSED: Final = CrossRule(
    "quote not crossed", ("bid", "ask"), _quote, "(bid is None or ask is None or bid <= ask)", _quote_columns
)
EXIT_AFTER_ENTRY: Final = CrossRule(
    "exit after entry",
    ("entry_ts", "exit_ts"),
    _exit_after_entry,
    "exit_ts >= entry_ts",
    lambda c: _micros(c, "exit_ts") >= _micros(c, "entry_ts"),
)
STOP_AND_TARGET_SIDES: Final = CrossRule(
    "stop and target sides",
    ("side", "price", "stop_price", "target_price"),
    _stop_and_target_sides,
    "(stop_price is None or (stop_price < price if side == 'BUY' else stop_price > price))"
    " and (target_price is None or (target_price > price if side == 'BUY' else target_price < price))",
    _stop_and_target_sides_columns,
)


# --- a class's table and what is made from it ---------------------------------------------------


@dataclass(frozen=True)
class RuleTable:
    """An event class's rules: ``fields`` (name, rule) in field order, then its ``cross`` rules."""

    fields: tuple[tuple[str, Rule], ...]
    cross: tuple[CrossRule, ...]
    maps: tuple[str, ...] = ()  # Mapping fields, frozen after the check

    @cached_property
    def steps(self) -> tuple[tuple[str, Rule] | CrossRule, ...]:
        """The order of the scalar check: the fields' rules, each cross-field rule after the last field it reads."""
        order: list[tuple[str, Rule] | CrossRule] = []
        pending = list(self.cross)
        done: set[str] = set()
        for name, rule in self.fields:
            order.append((name, rule))
            done.add(name)
            order += [c for c in pending if done.issuperset(c.fields)]
            pending = [c for c in pending if not done.issuperset(c.fields)]
        return (*order, *pending)

    def rule(self, name: str) -> Rule:
        return dict(self.fields)[name]

    def symbols(self, name: str) -> tuple[str, ...]:
        """The values the one-of field ``name`` may take (for an enum, the symbols of its ``.avsc``)."""
        rule = self.rule(name)
        if not isinstance(rule, _OneOf):
            raise TypeError(f"{name} is not a one-of field: {rule!r}")
        return rule.allowed

    def check(self, event: object) -> None:
        """The scalar check: raises ``InvalidEvent`` with the message of the first rule ``event`` breaks."""
        for step in self.steps:
            if isinstance(step, CrossRule):
                step.check(*(getattr(event, name) for name in step.fields))
            else:
                step[1].check(step[0], getattr(event, step[0]))

    def surely_valid(self, columns: Columns) -> Mask:
        """bool[n]: the rows of ``columns`` (one Arrow array per field) that ``check`` accepts; False: not sure."""
        n = _rows(columns)
        ok = np.ones(n, bool)
        if n == 0:
            return ok
        for name, rule in self.fields:
            ok &= rule.column(columns, name)
        for cross in self.cross:
            ok &= cross.column(columns)
        return ok


def surely_valid(event_type: type, columns: Columns) -> Mask:
    """bool[n]: rows the ``event_type`` dataclass accepts (False means: ask the dataclass)."""
    table: RuleTable | None = getattr(event_type, "rules", None)
    if table is None:
        return np.zeros(_rows(columns), bool)
    return table.surely_valid(columns)


E = TypeVar("E", bound=type)


def validated(cls: E) -> E:
    """Give a dataclass (frozen, slots) its ``rules`` table and a ``__post_init__`` made from it.

    The rules are the fields' ``metadata["rule"]`` and the class's ``cross_rules``;
    ``ONE_OF_ENUM`` becomes the symbols of the field's enum in ``<class name>.avsc``.
    """
    declared = tuple(
        (f.name, f.metadata[RULE].resolve(cls.__name__, f.name)) for f in fields(cls) if RULE in f.metadata
    )
    maps = tuple(f.name for f in fields(cls) if "Mapping[" in str(f.type))
    table = RuleTable(declared, tuple(getattr(cls, "cross_rules", ())), maps)
    cls.rules = table  # type: ignore[attr-defined]
    cls.__post_init__ = _fast_path(cls.__name__, table)  # type: ignore[attr-defined]
    return cls


def _fast_path(name: str, table: RuleTable) -> Callable[[Any], None]:
    """``__post_init__``: one expression of the usual forms, the scalar check when it is false, then maps frozen.

    Generated once per class, so that the usual case makes no call per field: each
    field is read once into a local named as the field (the cross-field rules' ``usual``
    forms use those names), constants are closure cells, and the globals are this
    module's, so ``_earliest`` and ``_check_event`` are looked up when it runs.
    """
    consts: dict[str, Any] = {}

    def const(value: Any) -> str:
        key = f"_c{len(consts)}"
        consts[key] = value
        return key

    read = sorted({n for n, _ in table.fields} | {n for c in table.cross for n in c.fields})
    clash = [n for n in read if n.startswith("_") or n in _GENERATED_NAMES]
    if clash:
        raise TypeError(f"{name}: fields {clash} would hide names the generated __post_init__ uses")
    terms = [
        f"({step.usual})" if isinstance(step, CrossRule) else step[1].usual(step[0], const) for step in table.steps
    ]
    proxy = const(MappingProxyType)
    body = [f"    {n} = self.{n}" for n in read]
    body += [f"    if not ({' and '.join(terms) or 'True'}):", "        _check_event(self)"]
    body += [
        f"    if type(self.{m}) is not {proxy}: _setattr(self, {m!r}, {proxy}(dict(self.{m})))" for m in table.maps
    ]
    source = "\n".join(
        [
            f"def _make({', '.join(consts)}):",
            "  def __post_init__(self):",
            *("  " + line for line in body),
            "  return __post_init__",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<rules of {name}>", "exec"), globals(), namespace)
    function: Callable[[Any], None] = namespace["_make"](*consts.values())
    function.__qualname__ = f"{name}.__post_init__"
    return function


def _check_event(event: Any) -> None:
    """The scalar check of ``event``'s class: what the fast path falls back to (looked up when it runs)."""
    type(event).rules.check(event)


_setattr: Final = object.__setattr__
_GENERATED_NAMES: Final = frozenset({"self", "type", "str", "float", "int", "datetime", "dict", "True", "None"})
