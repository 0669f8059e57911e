"""The adapter loop with a narrow in-memory port: event order, sizing from decisions, timeout default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from rlsizer.cli import main
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, run
from schemas.events import BarClosed, Event, OrderFilled, SignalRaised, SizeDecided
from streams.adapter_sdk import DecisionTimeout


@dataclass
class Port:
    multiplier: float | None  # None: every request times out
    events: list[Event] = field(default_factory=list)

    def publish_bar(self, bar: BarClosed) -> None:
        self.events.append(bar)

    def publish_fill(self, fill: OrderFilled) -> None:
        self.events.append(fill)

    def request_decisions(
        self, signals: Sequence[SignalRaised], timeout_s: float | None = None
    ) -> list[SizeDecided | DecisionTimeout]:
        self.events.extend(signals)
        if self.multiplier is None:
            return [DecisionTimeout(s.signal_id, 0.5) for s in signals]
        m = self.multiplier
        return [
            SizeDecided(
                ts_event=s.ts_event,
                signal_id=s.signal_id,
                symbol=s.symbol,
                strategy_id=s.strategy_id,
                multiplier=m,
                qty=s.base_qty * m,
                policy="MODEL",
                reason="t",
                latency_us=1,
            )
            for s in signals
        ]

    def flush(self, timeout_s: float = 30.0) -> None:
        pass


FRAME = load_dataset("GOOG").iloc[:400]
CFG = RunConfig(symbol="GOOG", interval="1d", run_id="r1", base_qty=10.0)


def test_events_are_published_in_time_order_and_sized_by_decisions() -> None:
    port = Port(multiplier=1.5)
    summary = run(FRAME, CFG, port, progress=False)
    assert summary.bars == 400 and summary.signals > 10 and summary.entries == summary.exits
    ts = [e.ts_event for e in port.events]
    assert ts == sorted(ts)
    fills = [e for e in port.events if isinstance(e, OrderFilled)]
    assert {f.qty for f in fills} == {15.0}
    signals = {e.signal_id: e for e in port.events if isinstance(e, SignalRaised)}
    for f in fills:
        sig = signals[f.signal_id]
        if f.leg == "ENTRY":
            assert f.side == sig.side and f.ts_event >= sig.ts_event
    # one open position per strategy: no strategy has two entries between consecutive exits
    open_by_strategy: dict[str, int] = {}
    for f in fills:
        sid = signals[f.signal_id].strategy_id
        open_by_strategy[sid] = open_by_strategy.get(sid, 0) + (1 if f.leg == "ENTRY" else -1)
        assert open_by_strategy[sid] in (0, 1)


def test_timeouts_trade_the_base_quantity() -> None:
    port = Port(multiplier=None)
    summary = run(FRAME, CFG, port, progress=False)
    assert summary.timeouts == summary.signals > 0
    assert {e.qty for e in port.events if isinstance(e, OrderFilled)} == {10.0}


def test_cli_names_the_bad_row(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Date,Open,High,Low,Close\n2024-01-02,10,11,9,10\n2024-01-03,10,10.2,10.5,10.3\n")
    assert main(["adapter", "csv", str(path), "--symbol", "X"]) == 2
    assert "row 2: high 10.2 < low 10.5" in capsys.readouterr().err


def _comparable(events: list[Event]) -> list[tuple]:
    """Events without their random ids and creation times."""
    return [
        (
            type(e).__name__,
            e.ts_event,
            getattr(e, "signal_id", None),
            getattr(e, "qty", None),
            getattr(e, "close", None),
        )
        for e in events
    ]


def test_runner_paused_midway_publishes_exactly_what_one_run_does() -> None:
    from rlsizer.reference.loop import Runner

    whole = Port(multiplier=1.25)
    run(FRAME, CFG, whole, progress=False)
    paused = Port(multiplier=1.25)
    runner = Runner(FRAME, CFG, paused)
    runner.advance(170, progress=False)
    assert runner.t == 170 and runner.summary.bars == 170
    runner.advance(400, progress=False)
    summary = runner.finish()
    assert summary.bars == 400
    assert _comparable(paused.events) == _comparable(whole.events)
