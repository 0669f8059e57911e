"""Re-publish a window of recorded history into a namespaced set of topics, as if it were live.

``replay_to_topics(con, target_settings, start, end, codec=...)`` reads from the warehouse
(refresh it from Kafka first: ``rlsizer replay-to-topics`` does) the *source* events of
``[start, end)``: the bars, signals and fills of the ``inputs`` topic. Derived events
(features, decisions, outcomes, health, dead letters, models) are not re-published: a
worker on the target prefix derives them again.

- Target topics are ``target.topic_prefix``'s catalogue, created first (``ensure_topics``).
- Each event keeps its key (symbol), ``ts_event``, ``ts_init`` and **event_id**: the
  replayed stream carries the same facts, so every consumer's deduplication holds (a
  record seen twice is stored once, a signal is decided once) and a warehouse reading both
  prefixes stores each fact once. Re-publishing *new* facts is what the adapter does,
  not a replay.
- Publication order is log order: per source partition by offset, which is the order
  the worker applied them in (a symbol's inputs are one partition, keyed by symbol, so
  they land on one target partition in the same order).
- ``warmup_bars`` bars per symbol before ``start`` are published first, so features at the
  window start see full indicator history (strategy history and account start empty).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import duckdb
from confluent_kafka.admin import AdminClient

from agents.features import WINDOW
from config.settings import Settings
from schemas.events import BarClosed, Event, OrderFilled, SignalRaised
from streams.producer import EventProducer, make_producer
from streams.topics import ensure_topics, new_topics, topic_name
from trainer.backtest.events import select_events

SOURCE_EVENTS: tuple[type[Event], ...] = (BarClosed, SignalRaised, OrderFilled)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayToTopicsStats:
    prefix: str
    published: MappingProxyType[str, int]  # topic -> records
    warmup_bars: int

    def summary(self) -> str:
        parts = ", ".join(f"{t} {n}" for t, n in sorted(self.published.items()))
        return f"published to prefix {self.prefix!r}: {parts or 'nothing'} ({self.warmup_bars} warm-up bars)"


def _naive(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"window bounds must be timezone-aware, got {ts!r}")
    return ts.astimezone(UTC).replace(tzinfo=None)


def window_events(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, *, warmup_bars: int = WINDOW
) -> tuple[list[Event], int]:
    """The source events to re-publish, in log order, and how many are warm-up bars."""
    if not start < end:
        raise ValueError(f"empty window: from {start.isoformat()} is not before to {end.isoformat()}")
    s, e = _naive(start), _naive(end)
    found: list[tuple[Event, int, int]] = []
    for event_type in SOURCE_EVENTS:
        found += select_events(con, event_type, "WHERE t.ts_event >= ? AND t.ts_event < ?", [s, e])
    warm = (
        select_events(
            con,
            BarClosed,
            """WHERE t.event_id IN (SELECT event_id FROM (
               SELECT event_id, row_number() OVER (PARTITION BY symbol ORDER BY ts_event DESC, event_id) AS back
               FROM bars WHERE ts_event < ?) WHERE back <= ?)""",
            [s, warmup_bars],
        )
        if warmup_bars > 0
        else []
    )
    ordered = sorted(warm + found, key=lambda x: (x[1], x[2]))
    return [ev for ev, _, _ in ordered], len(warm)


def replay_to_topics(
    con: duckdb.DuckDBPyConnection,
    target: Settings,
    start: datetime,
    end: datetime,
    *,
    codec: Any,
    warmup_bars: int = WINDOW,
    flush_timeout: float = 60.0,
) -> ReplayToTopicsStats:
    """Publish the window to ``target``'s topics (created if missing); waits for every delivery."""
    if not target.topic_prefix:
        raise ValueError("replay-to-topics needs a topic prefix: it never writes into the unprefixed live topics")
    events, n_warm = window_events(con, start, end, warmup_bars=warmup_bars)
    admin = AdminClient(target.kafka_config())
    ensure_topics(admin, new_topics(target, include_schemas=False))
    producer = EventProducer(make_producer(target, **{"linger.ms": 5}), codec, target)
    counts: Counter[str] = Counter()
    for event in events:
        producer.send(event)
        counts[type(event).__name__] += 1
    producer.flush(flush_timeout)

    published = {
        f"{topic_name(target, t)} {t.__name__}": counts[t.__name__] for t in SOURCE_EVENTS if counts[t.__name__]
    }
    return ReplayToTopicsStats(prefix=target.topic_prefix, published=MappingProxyType(published), warmup_bars=n_warm)
