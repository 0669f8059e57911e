"""Is the worker making progress on the partitions it holds? (issue 20: a worker held four partitions for
3.5 minutes without processing while their lag grew.)

``ProgressWatch.sample(now, partitions)`` takes, per input partition the worker holds, the
last offset applied and the partition's end as last fetched; a partition is *stalled*
when it has records to apply (lag > 0) and its applied offset has not moved for
``stall_seconds``. Pure bookkeeping: the app samples it on a timer, reports it on
``/health`` and as ``HealthChecked`` events, and ``rlsizer up`` restarts a worker that
reports a stall (or stops answering).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PartitionState:
    applied: int | None  # last offset applied (None: none)
    end: int | None  # the partition's end as last fetched (None: not known yet)

    @property
    def lag(self) -> int:
        if self.end is None:
            return 0
        return max(0, self.end - (self.applied + 1 if self.applied is not None else 0))


@dataclass(frozen=True, slots=True)
class Stall:
    partition: int
    lag: int
    seconds: float


@dataclass
class ProgressWatch:
    stall_seconds: float = 30.0
    _since: dict[int, tuple[int | None, float]] = field(default_factory=dict)  # partition -> (applied, since when)
    stalls: tuple[Stall, ...] = ()
    lag: int = 0

    def sample(self, now: float, partitions: Mapping[int, PartitionState]) -> tuple[Stall, ...]:
        """Record the partitions' states at ``now``; returns (and keeps) the stalled ones."""
        stalls = []
        for p, state in partitions.items():
            applied, since = self._since.get(p, (None, now))
            if p not in self._since or state.applied != applied or state.lag == 0:
                self._since[p] = (state.applied, now)
                continue
            if now - since >= self.stall_seconds:
                stalls.append(Stall(p, state.lag, now - since))
        for p in [p for p in self._since if p not in partitions]:  # no longer held
            del self._since[p]
        self.stalls = tuple(stalls)
        self.lag = sum(state.lag for state in partitions.values())
        return self.stalls

    def describe(self, topic: str) -> str:
        if not self.stalls:
            return f"applying {topic}: lag {self.lag:,}"
        held = ", ".join(f"[{s.partition}] lag {s.lag:,} for {s.seconds:.0f} s" for s in self.stalls)
        return f"holds {topic} {held} without applying anything (stalled)"
