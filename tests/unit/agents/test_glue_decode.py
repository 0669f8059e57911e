"""What the worker refuses at decode time: another event type's schema id, and events stamped in the future."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agents.glue.handlers import Effects, Handlers, Source
from agents.glue.ports import default_pipeline
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import BarClosed, EventRejected, SignalRaised
from streams.settings import Settings
from tests.unit.schemas.factories import T0, make_bar, make_signal

NOW = T0 + timedelta(days=400)


def handlers(**settings: float) -> Handlers:
    pipeline = default_pipeline()
    return Handlers(Settings(**settings), EventCodec(InMemoryRegistry()), pipeline, pipeline.strategy_map_from_spec(""),
                    pipeline.new_slot(), clock=lambda: NOW)


def decode(h: Handlers, topic: str, event: object, expected: type) -> object:
    src = Source(topic, 0, 7, b"AAPL", h.codec.encode(topic, event))  # type: ignore[arg-type]
    return h.decode(src, expected)


def letter(h: Handlers, effects: object) -> EventRejected:
    assert isinstance(effects, Effects) and effects.rejected
    (out,) = effects.outgoing
    dead = h.codec.decode(out.value)
    assert isinstance(dead, EventRejected)
    return dead


@pytest.mark.parametrize("ahead", [timedelta(seconds=301), timedelta(days=31), timedelta(days=3650)])
def test_a_signal_stamped_ahead_of_the_clock_is_dead_lettered(ahead: timedelta) -> None:
    h = handlers()
    dead = letter(h, decode(h, "rlsizer.signals", make_signal(ts_event=NOW + ahead), SignalRaised))
    assert dead.error_type == "future_timestamp"
    assert "RLSIZER_MAX_FUTURE_SECONDS=300" in dead.reason and "ahead of the worker's clock" in dead.reason


def test_a_bar_from_the_future_is_dead_lettered_too() -> None:
    h = handlers()
    dead = letter(h, decode(h, "rlsizer.bars", make_bar(ts_event=NOW + timedelta(days=2)), BarClosed))
    assert dead.error_type == "future_timestamp" and "2.0 days ahead" in dead.reason


@pytest.mark.parametrize("ahead", [timedelta(0), timedelta(seconds=299), -timedelta(days=9000)])
def test_events_up_to_the_limit_and_any_past_ones_are_accepted(ahead: timedelta) -> None:
    h = handlers()
    signal = make_signal(ts_event=NOW + ahead)
    assert decode(h, "rlsizer.signals", signal, SignalRaised) == signal


def test_zero_turns_the_limit_off() -> None:
    h = handlers(max_future_seconds=0.0)
    signal = make_signal(ts_event=NOW + timedelta(days=3650))
    assert decode(h, "rlsizer.signals", signal, SignalRaised) == signal


def test_another_event_types_schema_id_is_wrong_schema_before_its_body_is_read() -> None:
    """A SignalRaised body framed with BarClosed's schema id used to decode as a nonsense bar (invalid_value)."""
    h = handlers()
    bar_frame = h.codec.encode("rlsizer.signals", make_bar())[:5]  # magic byte + BarClosed's schema id
    signal_body = h.codec.encode("rlsizer.signals", make_signal())[5:]
    dead = letter(h, h.decode(Source("rlsizer.signals", 0, 7, b"AAPL", bar_frame + signal_body), SignalRaised))
    assert dead.error_type == "wrong_schema"
    assert "is BarClosed's, not SignalRaised's" in dead.reason and "rlsizer.signals carries SignalRaised" in dead.reason


def test_a_whole_event_of_another_type_is_wrong_schema() -> None:
    h = handlers()
    dead = letter(h, decode(h, "rlsizer.signals", replace(make_bar()), SignalRaised))
    assert dead.error_type == "wrong_schema"


class _Flaky:
    """A registry that cannot be asked ``fails`` times, then answers from ``inner``."""

    def __init__(self, inner: InMemoryRegistry, fails: int) -> None:
        self.inner, self.fails = inner, fails

    def register(self, subject: str, schema: str) -> int:
        return self.inner.register(subject, schema)

    def schema_by_id(self, schema_id: int) -> str:
        if self.fails:
            self.fails -= 1
            raise ConnectionError("connection refused")
        return self.inner.schema_by_id(schema_id)


def test_a_registry_that_does_not_answer_is_not_bad_input_and_an_unknown_id_is() -> None:
    """An outage must not dead-letter good records (the audit saw every record of one become unknown_schema)."""
    from schemas.codec import DecodeError, RegistryUnavailable, frame

    inner = InMemoryRegistry()
    signal = make_signal()
    data = EventCodec(inner).encode("rlsizer.signals", signal)
    codec = EventCodec(_Flaky(inner, fails=1))
    pipeline = default_pipeline()
    h = Handlers(Settings(), codec, pipeline, pipeline.strategy_map_from_spec(""), pipeline.new_slot(), clock=lambda: NOW)
    src = Source("rlsizer.signals", 0, 7, b"AAPL", data)
    with pytest.raises(RegistryUnavailable, match="did not answer for schema id 1: connection refused"):
        h.decode(src, SignalRaised)
    assert h.decode(src, SignalRaised) == signal  # it answers again: the same record decodes
    with pytest.raises(DecodeError) as info:
        codec.decode(frame(99, data[5:]))
    assert info.value.kind == "unknown_schema"  # the registry answered: no such id
