"""Stage 3, evaluation and the gate: metrics, baselines, walk-forward windows, the promotion gate and the HTML report."""
