"""rlsizer.v1 event schemas: ``.avsc`` files, dataclasses mirroring them and the Avro codec."""

from schemas.codec import DecodeError, EventCodec, InMemoryRegistry, SchemaRegistry
from schemas.events import (
    EVENT_TYPES,
    BarClosed,
    Event,
    EventRejected,
    FeaturesComputed,
    HealthChecked,
    InvalidEvent,
    ModelPublished,
    OrderFilled,
    SignalRaised,
    SizeDecided,
    TradeClosed,
)

__all__ = [
    "EVENT_TYPES",
    "BarClosed",
    "DecodeError",
    "Event",
    "EventCodec",
    "EventRejected",
    "FeaturesComputed",
    "HealthChecked",
    "InMemoryRegistry",
    "InvalidEvent",
    "ModelPublished",
    "OrderFilled",
    "SchemaRegistry",
    "SignalRaised",
    "SizeDecided",
    "TradeClosed",
]
