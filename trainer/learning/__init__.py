"""Stage 2, learning: the counterfactual sizing environment, the policy network, CVaR-constrained PPO and the verified ONNX export."""
