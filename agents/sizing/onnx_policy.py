"""The learned policy served with onnxruntime, and the slot that hot-swaps it.

Model contract: one input ``features`` float32 ``[batch, n_features]`` with the
columns in the order of the model's ``feature_names`` (from its manifest), one
output ``multiplier`` float32 ``[batch]`` already squashed to [0.25, 2.0]
inside the graph. Outputs are clamped again here, defensively; a NaN output
raises ``InferenceFailed``. The onnxruntime session is given (made by
``agents.sizing.sessions``, the one factory, single-threaded and sequential).

Build an ``OnnxPolicy`` off the hot path (``agents.sizing.sessions.load_policy``
loads the model; the policy checks its contract and smoke-tests it), then
``PolicySlot.swap`` it in; readers take ``slot.current`` once per decision.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN

INPUT_NAME = "features"
OUTPUT_NAME = "multiplier"


class PolicyLoadError(ValueError):
    """A model cannot be served: unreadable, or it breaks the input/output contract."""


class InferenceFailed(RuntimeError):
    """The model ran but its answer cannot be used (NaN, wrong shape, runtime error)."""


class MissingFeature(KeyError):
    """The features lack a column the model was trained on."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "missing feature"


class NodeArg(Protocol):
    """What a session says of one of its inputs or outputs."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...


class Session(Protocol):
    """The part of an ``onnxruntime.InferenceSession`` a policy uses."""

    def get_inputs(self) -> Sequence[NodeArg]: ...

    def get_outputs(self) -> Sequence[NodeArg]: ...

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> Sequence[Any]: ...


def feature_vector(features: Mapping[str, float], names: Sequence[str]) -> npt.NDArray[np.float32]:
    """The float32 vector of ``features`` in the column order ``names``."""
    try:
        return np.fromiter((features[name] for name in names), dtype=np.float32, count=len(names))
    except KeyError as exc:
        missing = [n for n in names if n not in features]
        raise MissingFeature(
            f"features lack {len(missing)} column(s) the model expects: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        ) from exc


class OnnxPolicy:
    """One loaded model: ``predict(features) -> multiplier``."""

    def __init__(self, session: Session, *, feature_names: Sequence[str], version: str) -> None:
        if not feature_names:
            raise PolicyLoadError("feature_names is empty: the model's column order must be given")
        self.version = version
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        self._session = session
        self._check_contract()

    def _check_contract(self) -> None:
        inputs = self._session.get_inputs()
        outputs = [o.name for o in self._session.get_outputs()]
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in outputs:
            raise PolicyLoadError(
                f"model {self.version} must have one input {INPUT_NAME!r} and an output {OUTPUT_NAME!r}; "
                f"it has inputs {[i.name for i in inputs]} and outputs {outputs}"
            )
        shape = inputs[0].shape
        if len(shape) != 2:
            raise PolicyLoadError(f"model {self.version}: input must be [batch, n_features], got {shape}")
        width = shape[1]
        if isinstance(width, int) and width != len(self.feature_names):
            raise PolicyLoadError(
                f"model {self.version} takes {width} features but {len(self.feature_names)} feature names were given"
            )
        try:
            self.predict_batch(np.zeros((1, len(self.feature_names)), dtype=np.float32))
        except InferenceFailed as exc:
            raise PolicyLoadError(f"model {self.version} fails its smoke inference: {exc}") from exc

    def predict_batch(self, matrix: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Multipliers for a float32 ``[batch, n_features]`` matrix, clamped to [0.25, 2.0]."""
        rows = np.asarray(matrix, dtype=np.float32)
        try:
            (raw,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: rows})
        except Exception as exc:
            raise InferenceFailed(f"model {self.version} inference error: {exc}") from exc
        out = np.asarray(raw, dtype=np.float32).reshape(-1)
        if out.shape[0] != rows.shape[0]:
            raise InferenceFailed(f"model {self.version} returned {out.shape[0]} values for {rows.shape[0]} rows")
        if not np.all(np.isfinite(out)):
            raise InferenceFailed(f"model {self.version} returned a non-finite multiplier")
        return np.clip(out, np.float32(MULTIPLIER_MIN), np.float32(MULTIPLIER_MAX))

    def predict(self, features: Mapping[str, float]) -> float:
        """The multiplier for one feature mapping (raises MissingFeature, InferenceFailed)."""
        return float(self.predict_batch(feature_vector(features, self.feature_names)[None, :])[0])

    def __repr__(self) -> str:
        return f"OnnxPolicy(version={self.version!r}, features={len(self.feature_names)})"


class PolicySlot:
    """Holds the serving policy (or None); ``swap`` replaces it atomically."""

    def __init__(self, policy: OnnxPolicy | None = None) -> None:
        self._policy = policy
        self._lock = threading.Lock()

    @property
    def current(self) -> OnnxPolicy | None:
        return self._policy  # a single attribute read: atomic

    def swap(self, new: OnnxPolicy | None) -> OnnxPolicy | None:
        """Install ``new`` and return the policy it replaced."""
        with self._lock:
            old, self._policy = self._policy, new
        return old
