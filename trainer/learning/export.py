"""ONNX export of the serving policy, verified against onnxruntime before anything is published.

The graph holds everything between raw features and the multiplier, so serving cannot drift
from training: normalisation with the training mean/std (buffers), clipping of normalised
inputs to +-10, the policy mean action, and the [0.25, 2.0] squashing.

    input  "features"   float32 [batch, d]     (columns in ``feature_names`` order)
    output "multiplier" float32 [batch]

Exported with the TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs
``onnxscript``, which we do not install, and this graph is a plain MLP either way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.sizing.onnx_policy import INPUT_NAME, OUTPUT_NAME  # the model contract serving checks
from agents.sizing.sessions import SessionFactory, onnx_session
from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN
from trainer.learning.policy_net import SizingAgent

OPSET = 17
MAX_ABS_DIFF = 1e-4


class ExportError(RuntimeError):
    """The exported graph is missing, malformed, or disagrees with torch."""


class ServingPolicy(nn.Module):
    """raw features [batch, d] -> multiplier [batch]: the deterministic half of a SizingAgent."""

    def __init__(self, agent: SizingAgent) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.agent.mean_multiplier(features)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedModel:
    onnx_bytes: bytes
    metadata: dict[str, Any]
    max_abs_diff: float


def max_abs_difference(
    agent: SizingAgent, onnx_bytes: bytes, features: np.ndarray, *, session: SessionFactory = onnx_session
) -> float:
    """max |torch - onnxruntime| of the multipliers over an evaluation matrix, the graph run by a session of
    ``session`` (by default serving's own factory)."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    with torch.no_grad():
        expected = ServingPolicy(agent).eval()(torch.from_numpy(x)).numpy()
    (got,) = session(onnx_bytes).run([OUTPUT_NAME], {INPUT_NAME: x})
    if got.shape != expected.shape:
        raise ExportError(f"onnxruntime output shape {got.shape} != torch {expected.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) if x.shape[0] else 0.0


def export_policy(
    agent: SizingAgent,
    *,
    feature_names: tuple[str, ...],
    feature_set: str,
    eval_features: np.ndarray,
    run_name: str | None = None,
    tolerance: float = MAX_ABS_DIFF,
    session: SessionFactory = onnx_session,
) -> ExportedModel:
    """Export to ONNX, check it, and compare with torch on ``eval_features`` [n, d]."""
    d = agent.n_features
    if len(feature_names) != d:
        raise ExportError(f"{len(feature_names)} feature names for a model of {d} inputs")
    if eval_features.ndim != 2 or eval_features.shape[1] != d or eval_features.shape[0] == 0:
        raise ExportError(f"eval_features must be a non-empty [n, {d}] matrix, got {eval_features.shape}")

    module = ServingPolicy(agent).eval()
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.zeros(2, d, dtype=torch.float32),),
            buffer,  # type: ignore[arg-type]  # a file-like object is accepted (torch's docs), its annotation says path
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    onnx_bytes = buffer.getvalue()

    import onnx  # lazy: loads onnx only when used

    try:
        onnx.checker.check_model(onnx.load_from_string(onnx_bytes))
    except Exception as exc:  # onnx raises several types; callers need one
        raise ExportError(f"exported graph fails the ONNX checker: {exc}") from exc

    diff = max_abs_difference(agent, onnx_bytes, eval_features, session=session)
    if not diff <= tolerance:
        raise ExportError(f"torch and onnxruntime disagree: max |diff| = {diff:.3g} > {tolerance:.1g}")

    metadata = {
        "feature_names": list(feature_names),
        "feature_set": feature_set,
        "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", d]}],
        "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch"]}],
        "opset": OPSET,
        "multiplier_range": [MULTIPLIER_MIN, MULTIPLIER_MAX],
        "max_abs_diff": diff,
        "run_name": run_name,
    }
    return ExportedModel(onnx_bytes=onnx_bytes, metadata=metadata, max_abs_diff=diff)
