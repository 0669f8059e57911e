"""onnxruntime sessions, made in one place with the serving options, and models loaded into policies.

The one factory of ``InferenceSession``: the worker (``agents.glue``), the trainer's export check,
its evaluation and the backtest all load models through it, so every model is run exactly as
serving runs it. ``OnnxPolicy`` (``agents.sizing.onnx_policy``) is given the session and builds none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import onnxruntime as ort

from agents.sizing.onnx_policy import OnnxPolicy, PolicyLoadError, Session

ModelSource = bytes | str | PathLike[str]  # the ONNX bytes, or the path of a file holding them
SessionFactory = Callable[[ModelSource], Session]


def session_options() -> ort.SessionOptions:
    """Single-threaded and sequential: the worker shares two cores with everything else and a single row
    is latency-bound."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def onnx_session(model: ModelSource) -> Session:
    """A CPU session of ``model`` with ``session_options`` (raises onnxruntime's errors for a bad model)."""
    source = model if isinstance(model, bytes) else str(Path(model))
    session: Session = ort.InferenceSession(source, sess_options=session_options(), providers=["CPUExecutionProvider"])
    return session


def load_policy(
    model: ModelSource,
    *,
    feature_names: Sequence[str],
    version: str,
    session: SessionFactory = onnx_session,
) -> OnnxPolicy:
    """``model`` served as an ``OnnxPolicy`` (raises ``PolicyLoadError``: unreadable, or off the contract)."""
    try:
        loaded = session(model)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        where = "bytes" if isinstance(model, bytes) else str(model)
        raise PolicyLoadError(f"model {version} from {where} cannot be loaded: {exc}") from exc
    return OnnxPolicy(loaded, feature_names=feature_names, version=version)
