"""Sizing policies: rules, the ONNX model with its hot-swap slot, and the choice between them."""

from agents.sizing.decide import WARMUP_BARS, SizingResult, decide
from agents.sizing.onnx_policy import (
    InferenceFailed,
    MissingFeature,
    OnnxPolicy,
    PolicyLoadError,
    PolicySlot,
    feature_vector,
    session_options,
)
from agents.sizing.rules import rule_multiplier

__all__ = [
    "WARMUP_BARS",
    "InferenceFailed",
    "MissingFeature",
    "OnnxPolicy",
    "PolicyLoadError",
    "PolicySlot",
    "SizingResult",
    "decide",
    "feature_vector",
    "rule_multiplier",
    "session_options",
]
