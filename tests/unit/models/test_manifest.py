from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.manifest import ManifestError, canonical_bytes, make_version, parse_manifest
from tests.unit.models.strategies import example_manifest, manifests

UTC = UTC


def test_canonical_form_is_sorted_compact_ascii_json_with_utc_microsecond_timestamps():
    data = canonical_bytes(
        example_manifest(created_at=datetime(2024, 1, 31, 13, 0, 0, 500, tzinfo=timezone(timedelta(hours=1))))
    )
    text = data.decode("ascii")
    assert ": " not in text and ", " not in text and "\n" not in text
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
    assert text.startswith('{"created_at":"2024-01-31T12:00:00.000500Z","data_from":"2024-01-01T00:00:00.000000Z",')
    assert doc["format"] == 1
    assert doc["inputs"] == [{"dtype": "float32", "name": "features", "shape": ["batch", 2]}]
    assert doc["metrics"] == {"cvar_5": -0.5, "sharpe": 1.25}
    assert doc["parent_version"] is None


def test_canonical_bytes_do_not_depend_on_dict_insertion_order():
    a = example_manifest(metrics={"a": 1.0, "b": 2.0})
    b = example_manifest(metrics={"b": 2.0, "a": 1.0})
    assert canonical_bytes(a) == canonical_bytes(b)


@given(manifests())
def test_roundtrip_is_exact(manifest):
    data = canonical_bytes(manifest)
    parsed = parse_manifest(data)
    assert parsed == manifest
    assert canonical_bytes(parsed) == data


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metrics": {"sharpe": math.nan}}, "metric sharpe must be a finite number"),
        ({"metrics": {"sharpe": math.inf}}, "metric sharpe must be a finite number"),
        ({"version": "../../etc"}, "version must match"),
        ({"model_name": "a/b"}, "model_name must match"),
        ({"sha256": "AB" * 32}, "sha256 must be 64 lowercase hex"),
        ({"size": -1}, "size must be an int >= 0"),
        ({"created_at": datetime(2024, 1, 1)}, "created_at must be a timezone-aware"),
        ({"data_from": datetime(2024, 2, 1, tzinfo=UTC)}, "is after data_to"),
        ({"feature_names": ("x", "x")}, "feature_names must be unique"),
        ({"inputs": ()}, "inputs must be a non-empty sequence"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(overrides, message):
    with pytest.raises(ManifestError, match=message):
        example_manifest(**overrides)


def test_parse_refuses_unknown_fields_other_formats_and_non_json():
    doc = json.loads(canonical_bytes(example_manifest()))
    with pytest.raises(ManifestError, match=r"unexpected \['extra'\]"):
        parse_manifest(json.dumps({**doc, "extra": 1}).encode())
    with pytest.raises(ManifestError, match="format 2 is not supported"):
        parse_manifest(json.dumps({**doc, "format": 2}).encode())
    with pytest.raises(ManifestError, match="not JSON"):
        parse_manifest(b"\xff{")
    with pytest.raises(ManifestError, match="must be a UTC timestamp"):
        parse_manifest(json.dumps({**doc, "created_at": "yesterday"}).encode())


def test_manifest_metrics_cannot_be_mutated():
    manifest = example_manifest()
    with pytest.raises(TypeError):
        manifest.metrics["sharpe"] = 9.0  # type: ignore[index]
    assert replace(manifest, run_name="x").metrics == manifest.metrics


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)),
    st.integers(min_value=1, max_value=10**8),
    st.text(max_size=30),
)
def test_versions_sort_by_creation_time_whatever_the_label(start, seconds, label):
    early = start.replace(tzinfo=UTC)
    late = early + timedelta(seconds=seconds)
    v1, v2 = make_version(early, label), make_version(late, label)
    assert v1 < v2
    assert example_manifest(version=v1).version == v1  # always a valid, path-safe version


def test_version_label_is_sanitised_to_path_safe_characters():
    created = datetime(2024, 1, 31, 12, tzinfo=UTC)
    assert make_version(created, "my run/7 ü") == "v20240131T120000Z-my-run-7"
    assert make_version(created, "../..") == "v20240131T120000Z-model"
