"""Tiny ONNX models obeying (or breaking) the sizing policy contract, built with onnx.helper."""

from __future__ import annotations

from onnx import TensorProto, helper


def sizing_model(n_features: int, *, kind: str = "sigmoid", input_name: str = "features") -> bytes:
    """features [batch, n] -> ReduceMean over columns -> head -> multiplier [batch].

    kind "sigmoid": 0.25 + 1.75 * sigmoid(mean), inside [0.25, 2.0];
    kind "identity": the mean itself, unbounded (tests the defensive clamp);
    kind "nan": mean * NaN.
    """
    nodes = [helper.make_node("ReduceMean", [input_name], ["mean"], axes=[1], keepdims=0)]
    inits = []
    if kind == "sigmoid":
        nodes += [
            helper.make_node("Sigmoid", ["mean"], ["s"]),
            helper.make_node("Mul", ["s", "scale"], ["scaled"]),
            helper.make_node("Add", ["scaled", "low"], ["multiplier"]),
        ]
        inits += [
            helper.make_tensor("scale", TensorProto.FLOAT, [], [1.75]),
            helper.make_tensor("low", TensorProto.FLOAT, [], [0.25]),
        ]
    elif kind == "identity":
        nodes.append(helper.make_node("Identity", ["mean"], ["multiplier"]))
    elif kind == "nan":
        nodes.append(helper.make_node("Mul", ["mean", "nan"], ["multiplier"]))
        inits.append(helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]))
    else:
        raise ValueError(kind)
    graph = helper.make_graph(
        nodes,
        "tiny_sizer",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("multiplier", TensorProto.FLOAT, ["batch"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
