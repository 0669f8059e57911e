"""Stage 4, backtests: recorded inputs re-sized by any policy through the worker's own code, parity with live, reports, and the logged signals every policy replays over."""
