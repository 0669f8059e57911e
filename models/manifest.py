"""The model manifest: what a published artifact is, and its one canonical byte form.

The manifest is what gets signed, so its bytes must be reproducible: JSON with
sorted keys, no whitespace, ASCII only, no NaN, timestamps in one UTC format.
``canonical_bytes(parse_manifest(b)) == b`` holds for every manifest we write, and
``parse_manifest`` rejects anything that is not a valid manifest.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

MANIFEST_FORMAT: Final = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TS_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


class ManifestError(ValueError):
    """A manifest value breaks its contract, or bytes are not a manifest."""


def check_safe_name(what: str, value: str) -> str:
    """Names and versions become S3 keys and file names: letters, digits, ``._-`` only."""
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or ".." in value:
        raise ManifestError(f"{what} must match {_SAFE_NAME.pattern} (no '..'), got {value!r}")
    return value


def format_ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_TS_FORMAT)


def parse_ts(what: str, text: str) -> datetime:
    try:
        return datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise ManifestError(f"{what} must be a UTC timestamp like 2024-01-31T12:00:00.000000Z, got {text!r}") from None


def _utc(what: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ManifestError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def make_version(created_at: datetime, label: str) -> str:
    """A sortable version: ``v20240131T120000Z-<label>`` (label: run name or short sha).

    Characters outside ``[A-Za-z0-9._-]`` in the label become ``-``; it is cut to 48.
    """
    slug = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", label)).strip("-.")[:48].strip("-.") or "model"
    return f"v{_utc('created_at', created_at):%Y%m%dT%H%M%SZ}-{slug}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorSpec:
    """One graph input or output: name, element type, shape (ints, or strings for symbolic dims)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ManifestError(f"tensor name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.dtype, str) or not self.dtype:
            raise ManifestError(f"tensor {self.name}: dtype must be a non-empty string, got {self.dtype!r}")
        object.__setattr__(self, "shape", tuple(self.shape))
        for dim in self.shape:
            ok = (isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0) or (isinstance(dim, str) and dim)
            if not ok:
                raise ManifestError(f"tensor {self.name}: each dim must be an int >= 0 or a symbol, got {dim!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TensorSpec:
        return cls(name=raw["name"], dtype=raw["dtype"], shape=tuple(raw["shape"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestDraft:
    """What the trainer knows about a model; the registry adds name, version, checksum, size, time."""

    feature_set: str
    feature_names: Sequence[str]
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    metrics: Mapping[str, float]
    data_from: datetime
    data_to: datetime
    run_name: str
    parent_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    model_name: str
    version: str
    sha256: str
    size: int
    feature_set: str
    feature_names: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    data_from: datetime
    data_to: datetime
    parent_version: str | None = None
    created_at: datetime
    run_name: str

    def __post_init__(self) -> None:
        check_safe_name("model_name", self.model_name)
        check_safe_name("version", self.version)
        if self.parent_version is not None:
            check_safe_name("parent_version", self.parent_version)
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise ManifestError(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ManifestError(f"size must be an int >= 0, got {self.size!r}")
        if not isinstance(self.feature_set, str) or not self.feature_set:
            raise ManifestError(f"feature_set must be a non-empty string, got {self.feature_set!r}")
        if not isinstance(self.run_name, str):
            raise ManifestError(f"run_name must be a string, got {self.run_name!r}")
        names = tuple(self.feature_names)
        if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
            raise ManifestError("feature_names must be unique non-empty strings")
        object.__setattr__(self, "feature_names", names)
        for what in ("inputs", "outputs"):
            specs = tuple(getattr(self, what))
            if not specs or not all(isinstance(s, TensorSpec) for s in specs):
                raise ManifestError(f"{what} must be a non-empty sequence of TensorSpec")
            object.__setattr__(self, what, specs)
        metrics: dict[str, float] = {}
        for key, value in dict(self.metrics).items():
            if not isinstance(key, str) or not key:
                raise ManifestError(f"metric names must be non-empty strings, got {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ManifestError(f"metric {key} must be a finite number, got {value!r}")
            metrics[key] = float(value)
        object.__setattr__(self, "metrics", MappingProxyType(metrics))
        for what in ("data_from", "data_to", "created_at"):
            object.__setattr__(self, what, _utc(what, getattr(self, what)))
        if self.data_from > self.data_to:
            raise ManifestError(f"data_from {format_ts(self.data_from)} is after data_to {format_ts(self.data_to)}")

    @classmethod
    def from_draft(
        cls, draft: ManifestDraft, *, model_name: str, version: str, sha256: str, size: int, created_at: datetime
    ) -> Manifest:
        return cls(
            model_name=model_name,
            version=version,
            sha256=sha256,
            size=size,
            feature_set=draft.feature_set,
            feature_names=tuple(draft.feature_names),
            inputs=tuple(draft.inputs),
            outputs=tuple(draft.outputs),
            metrics=draft.metrics,
            data_from=draft.data_from,
            data_to=draft.data_to,
            parent_version=draft.parent_version,
            created_at=created_at,
            run_name=draft.run_name,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "model_name": self.model_name,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "feature_set": self.feature_set,
            "feature_names": list(self.feature_names),
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "metrics": dict(self.metrics),
            "data_from": format_ts(self.data_from),
            "data_to": format_ts(self.data_to),
            "parent_version": self.parent_version,
            "created_at": format_ts(self.created_at),
            "run_name": self.run_name,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Manifest:
        if raw.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"manifest format {raw.get('format')!r} is not supported (expected {MANIFEST_FORMAT})")
        expected = set(cls.__dataclass_fields__) | {"format"}
        if set(raw) != expected:
            extra, missing = sorted(set(raw) - expected), sorted(expected - set(raw))
            raise ManifestError(f"manifest fields differ: unexpected {extra}, missing {missing}")
        try:
            return cls(
                model_name=raw["model_name"],
                version=raw["version"],
                sha256=raw["sha256"],
                size=raw["size"],
                feature_set=raw["feature_set"],
                feature_names=tuple(raw["feature_names"]),
                inputs=tuple(TensorSpec.from_dict(s) for s in raw["inputs"]),
                outputs=tuple(TensorSpec.from_dict(s) for s in raw["outputs"]),
                metrics=raw["metrics"],
                data_from=parse_ts("data_from", raw["data_from"]),
                data_to=parse_ts("data_to", raw["data_to"]),
                parent_version=raw["parent_version"],
                created_at=parse_ts("created_at", raw["created_at"]),
                run_name=raw["run_name"],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"manifest is malformed: {exc!r}") from exc


def canonical_bytes(manifest: Manifest) -> bytes:
    """The exact bytes that are stored and signed."""
    return json.dumps(
        manifest.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def parse_manifest(data: bytes) -> Manifest:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"manifest must be a JSON object, got {type(raw).__name__}")
    return Manifest.from_dict(raw)
