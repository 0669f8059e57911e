"""Each dataclass mirrors its .avsc: same fields, same order, same optionality."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC

import pytest

from schemas.catalog import schema_dict, schema_path
from schemas.events import EVENT_TYPES, NAMESPACE, BarClosed, InvalidEvent, SignalRaised, SizeDecided, field_names
from tests.unit.schemas.factories import make_bar, make_signal


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_dataclass_fields_match_schema(event_type):
    schema = json.loads(schema_path(event_type).read_text())
    assert schema["namespace"] == NAMESPACE
    assert f"{schema['namespace']}.{schema['name']}" == event_type.schema_name
    assert [f["name"] for f in schema["fields"]] == list(field_names(event_type))
    assert [f["name"] for f in schema["fields"][:3]] == ["event_id", "ts_event", "ts_init"]


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_optional_fields_are_nullable_with_null_default(event_type):
    by_name = {f.name: f for f in dataclasses.fields(event_type)}
    for avro_field in schema_dict(event_type)["fields"]:
        is_union_with_null = isinstance(avro_field["type"], list) and "null" in avro_field["type"]
        annotation = str(by_name[avro_field["name"]].type)
        assert is_union_with_null == ("None" in annotation), avro_field["name"]
        if is_union_with_null:
            assert avro_field.get("default", "missing") is None


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_events_are_frozen(event_type):
    params = event_type.__dataclass_params__
    assert params.frozen


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"close": float("nan")}, "close must be a finite number > 0"),
        ({"close": -1.0, "low": -2.0}, "> 0"),
        ({"open": 0.0}, "open must be a finite number > 0"),
        ({"high": 1.0, "low": 2.0}, "inconsistent"),
        ({"volume": -5.0}, "volume must be a finite number >= 0"),
        ({"bid": 101.0, "ask": 100.0}, "crossed quote"),
    ],
)
def test_bar_rejects_bad_values(change, message):
    with pytest.raises(InvalidEvent, match=message):
        make_bar(**change)


def test_signal_rejects_bad_values():
    with pytest.raises(InvalidEvent, match="atr must be"):
        make_signal(atr=-0.1)
    with pytest.raises(InvalidEvent, match="side must be one of BUY, SELL"):
        make_signal(side="LONG")
    with pytest.raises(InvalidEvent, match="price must be"):
        make_signal(price=float("inf"))


def test_naive_timestamp_rejected():
    from datetime import datetime

    with pytest.raises(InvalidEvent, match="timezone-aware"):
        make_bar(ts_event=datetime(2024, 1, 1))


def test_decision_multiplier_bounds():
    base = dict(signal_id="s", symbol="X", strategy_id="S1", qty=1.0, policy="RULES", reason="r", latency_us=1)
    from datetime import datetime

    ts = datetime(2024, 1, 1, tzinfo=UTC)
    SizeDecided(ts_event=ts, multiplier=2.0, **base)
    with pytest.raises(InvalidEvent, match=r"\[0.25, 2.0\]"):
        SizeDecided(ts_event=ts, multiplier=2.01, **base)


def test_attrs_cannot_be_mutated():
    signal = make_signal(attrs={"a": "1"})
    with pytest.raises(TypeError):
        signal.attrs["b"] = "2"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        signal.price = 3.0  # type: ignore[misc]
    assert isinstance(make_bar(), BarClosed) and isinstance(signal, SignalRaised)
