"""Point-in-time features of a signal (feature set ``fs1``), computed from pure state."""

from agents.features.catalog import FEATURE_DOCS, FEATURE_NAMES, FEATURE_NEUTRAL, FEATURE_SET
from agents.features.compute import compute_features
from agents.features.window import FEATURE_BARS, WINDOW, BarRejected, StateCorrupt, SymbolState, Window

__all__ = [
    "FEATURE_BARS",
    "FEATURE_DOCS",
    "FEATURE_NAMES",
    "FEATURE_NEUTRAL",
    "FEATURE_SET",
    "WINDOW",
    "BarRejected",
    "StateCorrupt",
    "SymbolState",
    "Window",
    "compute_features",
]
