"""The health monitor: probes that gather facts for the pure checks in `agents.health`, the recovery actions, the monitor loop and its `/metrics`."""
