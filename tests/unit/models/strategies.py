"""Hypothesis strategies and example builders for manifests (also used by the integration tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from models.manifest import Manifest, ManifestDraft, TensorSpec

UTC = UTC
_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
_text = st.text(min_size=1, max_size=12)
_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
_dims = st.one_of(st.integers(min_value=0, max_value=4096), _text)
tensor_specs = st.builds(
    TensorSpec,
    name=_text,
    dtype=st.sampled_from(["float32", "float64", "int64"]),
    shape=st.lists(_dims, max_size=3).map(tuple),
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    start = draw(_times)
    return Manifest(
        model_name=draw(_names),
        version=draw(_names),
        sha256=draw(st.binary(min_size=32, max_size=32)).hex(),
        size=draw(st.integers(min_value=0, max_value=2**40)),
        feature_set=draw(_text),
        feature_names=tuple(draw(st.lists(_text, max_size=6, unique=True))),
        inputs=tuple(draw(st.lists(tensor_specs, min_size=1, max_size=2))),
        outputs=tuple(draw(st.lists(tensor_specs, min_size=1, max_size=2))),
        metrics=draw(st.dictionaries(_text, st.floats(allow_nan=False, allow_infinity=False), max_size=4)),
        data_from=start,
        data_to=start + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000))),
        parent_version=draw(st.none() | _names),
        created_at=draw(_times),
        run_name=draw(st.text(max_size=12)),
    )


def example_manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "model_name": "cvar-ppo",
        "version": "v20240131T120000Z-run7",
        "sha256": "ab" * 32,
        "size": 1234,
        "feature_set": "fs-v3",
        "feature_names": ("atr_pct", "rsi_14"),
        "inputs": (TensorSpec(name="features", dtype="float32", shape=("batch", 2)),),
        "outputs": (TensorSpec(name="multiplier", dtype="float32", shape=("batch", 1)),),
        "metrics": {"cvar_5": -0.5, "sharpe": 1.25},
        "data_from": datetime(2024, 1, 1, tzinfo=UTC),
        "data_to": datetime(2024, 1, 31, 12, tzinfo=UTC),
        "parent_version": None,
        "created_at": datetime(2024, 1, 31, 12, 0, 0, 500, tzinfo=UTC),
        "run_name": "run7",
    }
    fields.update(overrides)
    return Manifest(**fields)  # type: ignore[arg-type]


def example_draft(**overrides: object) -> ManifestDraft:
    fields: dict[str, object] = {
        "feature_set": "fs-v3",
        "feature_names": ("atr_pct", "rsi_14"),
        "inputs": (TensorSpec(name="features", dtype="float32", shape=("batch", 2)),),
        "outputs": (TensorSpec(name="multiplier", dtype="float32", shape=("batch", 1)),),
        "metrics": {"cvar_5": -0.5, "sharpe": 1.25},
        "data_from": datetime(2024, 1, 1, tzinfo=UTC),
        "data_to": datetime(2024, 1, 31, tzinfo=UTC),
        "run_name": "run7",
    }
    fields.update(overrides)
    return ManifestDraft(**fields)  # type: ignore[arg-type]
