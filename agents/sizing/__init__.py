"""Sizing policies: rules, the ONNX model with its hot-swap slot and session factory, and the choice between them."""

from agents.sizing.decide import WARMUP_BARS, SizingResult, decide
from agents.sizing.onnx_policy import (
    InferenceFailed,
    MissingFeature,
    OnnxPolicy,
    PolicyLoadError,
    PolicySlot,
    Session,
    feature_vector,
)
from agents.sizing.rules import rule_multiplier
from agents.sizing.sessions import load_policy, onnx_session, session_options

__all__ = [
    "WARMUP_BARS",
    "InferenceFailed",
    "MissingFeature",
    "OnnxPolicy",
    "PolicyLoadError",
    "PolicySlot",
    "Session",
    "SizingResult",
    "decide",
    "feature_vector",
    "load_policy",
    "onnx_session",
    "rule_multiplier",
    "session_options",
]
