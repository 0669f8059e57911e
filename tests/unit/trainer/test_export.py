from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents.sizing import onnx_session
from trainer.backtest.synthetic import synthetic_signals
from trainer.learning.cvar_ppo import TrainConfig, train
from trainer.learning.export import ExportError, export_policy, max_abs_difference


@pytest.fixture(scope="module")
def exported():
    data = synthetic_signals(n_episodes=30, trades_per_episode=4, seed=9)
    res = train(data, TrainConfig(total_updates=2, hidden=(16, 16), epochs=1, minibatch=64))
    with torch.no_grad():  # push the head so outputs use the whole range, not just ~1.125
        res.model.actor_mean[-1].weight.mul_(300.0)
    out = export_policy(
        res.model,
        feature_names=res.feature_names,
        feature_set="fs-test-1",
        eval_features=data.features,
        run_name=res.run_name,
    )
    return res, data, out


def test_roundtrip_matches_torch_and_carries_its_signature(exported) -> None:
    res, data, out = exported
    assert out.max_abs_diff < 1e-5
    model = onnx.load_from_string(out.onnx_bytes)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    sess = onnx_session(out.onnx_bytes)
    (inp,), (outp,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", len(res.feature_names))
    assert (outp.name, outp.type, len(outp.shape)) == ("multiplier", "tensor(float)", 1)
    assert out.metadata["feature_names"] == list(res.feature_names)
    assert out.metadata["feature_set"] == "fs-test-1" and out.metadata["opset"] >= 17
    got = sess.run(["multiplier"], {"features": data.features.astype(np.float32)})[0]
    assert got.min() < 0.6 and got.max() > 1.6  # the test model really spans the range


@pytest.mark.parametrize("batch", [1, 7, 513])
def test_dynamic_batch(exported, batch) -> None:
    res, data, out = exported
    x = np.resize(data.features, (batch, data.features.shape[1])).astype(np.float32)
    (got,) = onnx_session(out.onnx_bytes).run(["multiplier"], {"features": x})
    assert got.shape == (batch,)
    assert max_abs_difference(res.model, out.onnx_bytes, x) < 1e-5


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_multiplier_is_always_in_range_even_for_wild_inputs(exported, data) -> None:
    res, _, out = exported
    d = len(res.feature_names)
    x = data.draw(arrays(np.float32, (4, d), elements=st.floats(-1e6, 1e6, width=32)))
    (got,) = onnx_session(out.onnx_bytes).run(["multiplier"], {"features": x})
    assert np.all((got >= 0.25) & (got <= 2.0))


def test_export_refuses_mismatched_feature_names(exported) -> None:
    res, data, _ = exported
    with pytest.raises(ExportError, match="feature names"):
        export_policy(res.model, feature_names=res.feature_names[:-1], feature_set="x", eval_features=data.features)


def test_export_raises_when_onnx_disagrees_with_torch(exported) -> None:
    res, data, _ = exported
    with pytest.raises(ExportError, match="disagree"):
        export_policy(
            res.model, feature_names=res.feature_names, feature_set="x", eval_features=data.features, tolerance=-1.0
        )
