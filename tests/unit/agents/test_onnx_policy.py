from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from agents.sizing import InferenceFailed, MissingFeature, PolicyLoadError, PolicySlot, feature_vector, load_policy
from tests.unit.agents.tiny_onnx import sizing_model

NAMES = ("a", "b", "c")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_predicts_in_the_model_column_order_from_bytes_and_path(tmp_path) -> None:
    policy = load_policy(sizing_model(3), feature_names=NAMES, version="v7")
    assert policy.version == "v7"
    got = policy.predict({"c": 3.0, "a": 0.0, "b": 0.0, "extra": 99.0})
    assert got == pytest.approx(0.25 + 1.75 * _sigmoid(1.0), rel=1e-6)
    path = tmp_path / "m.onnx"
    path.write_bytes(sizing_model(3))
    from_path = load_policy(path, feature_names=NAMES, version="v7")
    batch = np.array([[0, 0, 0], [-30, -30, -30], [9, 9, 9]], dtype=np.float32)
    np.testing.assert_allclose(
        from_path.predict_batch(batch),
        [0.25 + 1.75 * 0.5, 0.25 + 1.75 * _sigmoid(-30), 0.25 + 1.75 * _sigmoid(9)],
        rtol=1e-6,
    )


def test_session_is_single_threaded_and_sequential() -> None:
    import onnxruntime as ort

    policy = load_policy(sizing_model(3), feature_names=NAMES, version="v1")
    opts = policy._session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


def test_output_is_clamped_defensively() -> None:
    policy = load_policy(sizing_model(3, kind="identity"), feature_names=NAMES, version="raw")
    assert policy.predict({"a": 10.0, "b": 10.0, "c": 10.0}) == 2.0
    assert policy.predict({"a": -5.0, "b": 0.0, "c": 0.0}) == 0.25


def test_nan_output_raises() -> None:
    with pytest.raises(PolicyLoadError, match="smoke inference"):
        load_policy(sizing_model(3, kind="nan"), feature_names=NAMES, version="bad")


def test_contract_violations_are_load_errors() -> None:
    with pytest.raises(PolicyLoadError, match="takes 4 features but 3"):
        load_policy(sizing_model(4), feature_names=NAMES, version="x")
    with pytest.raises(PolicyLoadError, match="input 'features'"):
        load_policy(sizing_model(3, input_name="obs"), feature_names=NAMES, version="x")
    with pytest.raises(PolicyLoadError, match="cannot be loaded"):
        load_policy(b"not a model", feature_names=NAMES, version="x")


def test_missing_feature_names_the_column() -> None:
    with pytest.raises(MissingFeature, match="b"):
        feature_vector({"a": 1.0, "c": 2.0}, NAMES)
    vec = feature_vector({"a": 1.0, "b": 2.0, "c": 3.0}, ("c", "a"))
    assert vec.dtype == np.float32 and vec.tolist() == [3.0, 1.0]


def test_slot_swaps_atomically_under_concurrent_readers() -> None:
    v1 = load_policy(sizing_model(3), feature_names=NAMES, version="v1")
    v2 = load_policy(sizing_model(3), feature_names=NAMES, version="v2")
    slot = PolicySlot()
    assert slot.current is None
    assert slot.swap(v1) is None
    seen: set[str] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            policy = slot.current
            assert policy is not None
            seen.add(policy.version)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(200):
            slot.swap(v2)
            slot.swap(v1)
    finally:
        stop.set()
        reader.join(timeout=5)
    assert seen <= {"v1", "v2"} and seen
    assert slot.swap(None) is v1


def test_inference_failure_is_typed() -> None:
    policy = load_policy(sizing_model(3), feature_names=NAMES, version="v1")
    with pytest.raises(InferenceFailed):
        policy.predict_batch(np.zeros((1, 5), dtype=np.float32))
