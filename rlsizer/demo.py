"""``rlsizer demo``: the whole learning loop on real market data, on the embedded stack.

1. start the embedded stack (SeaweedFS, tansu on it, schema registry) and one worker;
2. *learn*: stream the first part of each data set (daily AAPL, MSFT, IBM, GOOG up to
   2010, hourly EUR/USD up to September 2017) through the reference adapter:
   bars, signals sized by the worker's rule policy, paper fills, outcomes;
3. *train*: one trainer round (replay into DuckDB, CVaR-PPO trained before the last
   held-out windows, the gate over those windows, ONNX, signed publish); a promoted
   model reaches the worker by ``ModelPublished`` and is hot-swapped after
   verification, which the worker reports on the health topic;
4. *serve*: stream the rest of each data set under whatever policy now serves;
5. *summary*: decisions by policy and model version, the gate's reason and the
   round's walk-forward table (every policy on every held-out window), and on the
   data after the model was published, fixed 1x vs rules vs the model (return,
   Sharpe, max drawdown, per-trade and session CVaR 5%, return / |session CVaR 5%|)
   per market, by backtest through the same pure code; an HTML report with plots.

Everything runs on an accelerated clock: the next bar is published as soon as
the decisions of this one are back. The broker keeps the demo's topics in memory
by default (the demo starts from an empty history anyway, and tansu's S3 storage
costs about 4x in throughput on a small machine); ``--durable`` stores them in
SeaweedFS as ``rlsizer up`` does. Models, manifests and aliases always live in
SeaweedFS. Ctrl-C stops every process.
"""

from __future__ import annotations

import html
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.strategy_map import StrategyMap
from config.settings import Settings
from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from rlsizer.stack.processes import ManagedProcess, StackError, free_port
from rlsizer.stack.services import start_worker
from streams.adapter_sdk import AdapterClient
from streams.codec_factory import make_codec
from streams.consumer import make_consumer

Out = Callable[[str], None]
UTC = UTC


@dataclass(frozen=True, slots=True, kw_only=True)
class Market:
    """One data set and where its learning part ends (the held-out part starts)."""

    dataset: str
    split: datetime


DEFAULT_MARKETS: tuple[Market, ...] = (
    Market(dataset="AAPL", split=datetime(2010, 1, 1, tzinfo=UTC)),
    Market(dataset="MSFT", split=datetime(2010, 1, 1, tzinfo=UTC)),
    Market(dataset="IBM", split=datetime(2010, 1, 1, tzinfo=UTC)),
    Market(dataset="GOOG", split=datetime(2010, 1, 1, tzinfo=UTC)),
    Market(dataset="EURUSD", split=datetime(2017, 9, 1, tzinfo=UTC)),
)


DEFAULT_LEARN_BARS = 1500
DEFAULT_SERVE_BARS = 700
DEFAULT_UPDATES = 80


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    data_dir: Path = Path(".rlsizer/demo")
    markets: tuple[Market, ...] = DEFAULT_MARKETS
    max_learn_bars: int | None = DEFAULT_LEARN_BARS  # per market, the most recent ones before the split (None: all)
    max_serve_bars: int | None = DEFAULT_SERVE_BARS  # per market, after the split (None: all)
    updates: int = DEFAULT_UPDATES
    seed: int = 1
    min_outcomes: int = 100
    memory: bool = (
        True  # the demo empties its history first; memory topics are ~4x faster here than SeaweedFS-backed ones
    )
    progress: bool = True
    decision_timeout_s: float = 10.0


@dataclass(slots=True)
class DemoResult:
    signals: int = 0
    timeouts: int = 0
    version: str | None = None
    promoted: bool = False
    served_version: str | None = None
    decisions: list[tuple[str, str, int]] = field(default_factory=list)  # policy, model version, count
    tables: dict[str, str] = field(default_factory=dict)  # market group -> text table
    gate_reason: str = ""
    walk_forward: str = ""  # the round's walk-forward table (text)
    walk_forward_rows: list[tuple[str, ...]] = field(default_factory=list)
    report_path: Path | None = None
    train_report: Path | None = None
    seconds: float = 0.0


def _elapsed(t0: float) -> str:
    return f"[{time.monotonic() - t0:6.1f}s]"


def _frames(market: Market, cfg: DemoConfig) -> tuple[Any, int, int]:
    """The data set, the index where serving starts and the index where the run ends."""
    from rlsizer.reference.data import load_dataset  # lazy: loads pandas only when used

    frame = load_dataset(market.dataset)
    split = int((frame.index < market.split).sum())
    start = 0 if cfg.max_learn_bars is None else max(0, split - cfg.max_learn_bars)
    end = len(frame) if cfg.max_serve_bars is None else min(len(frame), split + cfg.max_serve_bars)
    return frame.iloc[start:end], split - start, end - start


def wait_for_served(settings: Settings, codec: Any, version: str, timeout: float) -> bool:
    """True once the worker reports on the health topic that it verified and loaded ``version``."""

    consumer = make_consumer(settings, f"demo-health-{uuid.uuid4().hex[:8]}", **{"auto.offset.reset": "earliest"})
    consumer.subscribe([settings.topic("health")])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            event = codec.decode(msg.value())
            if getattr(event, "check", "") == "model_integrity" and version in event.detail and event.status == "OK":
                return True
        return False
    finally:
        consumer.close()


def decision_counts(warehouse: Path) -> list[tuple[str, str, int]]:
    import duckdb  # lazy: loads duckdb only when used

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "SELECT policy, coalesce(model_version, '-'), count(*) FROM decisions GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    return [(str(p), str(v), int(n)) for p, v, n in rows]


def run_demo(cfg: DemoConfig, out: Out = print) -> DemoResult:
    from models import ModelRegistry  # lazy: loads boto3 only when used
    from rlsizer.reference.loop import RunConfig, Runner  # lazy: loads ta-lib, pandas, tqdm only when used
    from trainer.learning.cvar_ppo import TrainConfig  # lazy: loads torch, onnxruntime, onnx only when used
    from trainer.round import (  # lazy: loads torch, onnxruntime, onnx only when used
        format_walk_forward,
        run_round,
        walk_forward_rows,
    )

    t0 = time.monotonic()
    result = DemoResult()
    data_dir = Path(cfg.data_dir).resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo's own directory: every run starts from an empty history
    out(f"rlsizer demo: data in {data_dir}")
    stack = EmbeddedStack(data_dir, ports=StackPorts.free(), memory=cfg.memory)
    worker: ManagedProcess | None = None
    try:
        stack.start()
        settings = replace(
            stack.settings, decision_timeout_ms=int(cfg.decision_timeout_s * 1000), worker_web_port=free_port()
        )
        s = settings
        out(
            f"{_elapsed(t0)} stack up: Kafka {s.kafka_bootstrap}, registry {s.registry_url}, S3 {s.s3_endpoint}"
            f" ({'memory' if cfg.memory else 'S3'} storage)"
        )
        worker = start_worker(settings, worker_id="demo")
        stack.processes.append(worker)
        out(f"{_elapsed(t0)} worker ready (pid {worker.pid}, log {worker.log_path})")
        codec = make_codec(settings)
        run_id = f"demo{cfg.seed}"  # the same data, the same signal ids: a second demo decides and trains the same
        runners: list[tuple[Market, Runner, int, int]] = []
        with AdapterClient(settings, codec, adapter_name="demo", default_timeout_s=cfg.decision_timeout_s) as client:
            for market in cfg.markets:
                frame, split, end = _frames(market, cfg)
                rc = RunConfig(
                    symbol=frame.attrs["symbol"],
                    interval=frame.attrs["interval"],
                    run_id=run_id,
                    adapter_name="demo",
                    timeout_s=cfg.decision_timeout_s,
                )
                runners.append((market, Runner(frame, rc, client), split, end))

            out(f"{_elapsed(t0)} learning phase: streaming {sum(r[2] for r in runners)} bars")
            for market, runner, split, _ in runners:
                runner.advance(split, progress=cfg.progress)
                out(f"{_elapsed(t0)}   {market.dataset:<7} {runner.summary.line()}")

            out(f"{_elapsed(t0)} training: replay into DuckDB, CVaR-PPO ({cfg.updates} updates), gate, ONNX, publish")
            registry = ModelRegistry.from_settings(settings)
            round_ = run_round(
                settings,
                codec=codec,
                registry=registry,
                min_outcomes=cfg.min_outcomes,
                train_config=TrainConfig(seed=cfg.seed, total_updates=cfg.updates),
                progress=cfg.progress,
            )
            result.version, result.promoted, result.train_report = round_.version, round_.promoted, round_.report_path
            result.gate_reason = round_.reason
            if round_.skipped:
                out(f"{_elapsed(t0)} training skipped: {round_.reason}")
            else:
                result.walk_forward = format_walk_forward(round_)
                result.walk_forward_rows = walk_forward_rows(round_)
                out(
                    f"{_elapsed(t0)} the round's walk-forward table ({round_.rows} scored signals; the model trained before "
                    f"{len(round_.windows)} held-out windows, each policy replayed on each):"
                )
                for line in result.walk_forward.splitlines():
                    out(f"           {line}")
                out(
                    f"{_elapsed(t0)} model {round_.version}: {'PROMOTED to champion' if round_.promoted else 'kept as challenger'}"
                    f" ({round_.reason})"
                )
                # the ONNX bytes' digest: two runs with the same seed and data publish the same model
                if round_.version:
                    out(f"{_elapsed(t0)} model sha256 {registry.read_manifest(round_.version).sha256}")
            if round_.promoted and round_.version:
                served = wait_for_served(settings, codec, round_.version, timeout=60)
                result.served_version = round_.version if served else None
                out(
                    f"{_elapsed(t0)} worker {'hot-swapped to ' + round_.version if served else 'did NOT report the swap within 60 s'}"
                )

            out(f"{_elapsed(t0)} serving phase: streaming {sum(r[3] - r[2] for r in runners)} bars")
            for market, runner, _, end in runners:
                runner.advance(end, progress=cfg.progress)
                runner.finish()
                out(f"{_elapsed(t0)}   {market.dataset:<7} {runner.summary.line()}")
                result.signals += runner.summary.signals
                result.timeouts += runner.summary.timeouts
        time.sleep(1.0)  # the last outcomes derived by the worker
        _summarise(settings, codec, cfg, runners, result, out, t0)
    finally:
        stack.stop()
    result.seconds = time.monotonic() - t0
    out(f"{_elapsed(t0)} done; everything stopped")
    return result


def _groups(runners: list[tuple[Market, Any, int, int]]) -> dict[str, tuple[datetime, datetime]]:
    """Held-out windows: one per distinct split date (markets sharing a calendar are compared together)."""
    windows: dict[str, tuple[datetime, datetime]] = {}
    for market, runner, split, end in runners:
        ts = runner.starts
        start, stop = ts[split] if split < len(ts) else market.split, ts[end - 1] + timedelta(days=2)
        key = ", ".join(m.dataset for m, *_ in runners if m.split == market.split)
        lo, hi = windows.get(key, (start, stop))
        windows[key] = (min(lo, start), max(hi, stop))
    return windows


def _summarise(
    settings: Settings,
    codec: Any,
    cfg: DemoConfig,
    runners: list[tuple[Market, Any, int, int]],
    result: DemoResult,
    out: Out,
    t0: float,
) -> None:
    import duckdb  # lazy: loads duckdb only when used

    from models import ModelRegistry  # lazy: loads boto3 only when used
    from trainer.backtest.events import load_history  # lazy: loads duckdb only when used
    from trainer.backtest.report import text_report  # lazy: loads onnxruntime, onnx, duckdb only when used
    from trainer.backtest.run import backtest as run_backtest  # lazy: loads onnxruntime, onnx, duckdb only when used
    from trainer.backtest.run import (  # lazy: loads onnxruntime, onnx, duckdb only when used
        fixed_policy,
        model_policy,
        rules_policy,
    )
    from trainer.warehouse.replay import replay  # lazy: loads duckdb, tqdm only when used
    from trainer.warehouse.store import default_path  # lazy: loads duckdb only when used

    warehouse = default_path(settings.data_dir)
    replay(settings, codec, warehouse_path=warehouse, progress=False)
    result.decisions = decision_counts(warehouse)
    policies = [fixed_policy(), rules_policy()]
    if result.version:
        policies.append(model_policy(ModelRegistry.from_settings(settings), result.version, name="model"))
    strategy_map = StrategyMap.from_spec(settings.strategy_map)
    sections = []
    for group, (start, end) in _groups(runners).items():
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            history = load_history(con, start, end)
        finally:
            con.close()
        if not history.window_ids:
            continue
        bt = run_backtest(history, policies, strategy_map, n_boot=300)
        result.tables[group] = text_report(bt)
        sections.append((group, bt))
    lines = [
        "",
        "=" * 96,
        "rlsizer demo summary",
        "=" * 96,
        f"signals {result.signals}, decision timeouts {result.timeouts}",
        "decisions by policy and model version:",
    ]
    lines += [f"  {p:<9} {v:<58} {n:>6}" for p, v, n in result.decisions]
    model_line = (
        f"model {result.version}: "
        + (
            "champion, served by the worker"
            if result.served_version
            else "champion (swap not confirmed)"
            if result.promoted
            else "not promoted by the gate; rules kept serving"
        )
        if result.version
        else "no model trained"
    )
    lines += [model_line]
    if result.walk_forward:
        lines += [
            f"gate: {result.gate_reason}",
            "",
            "training round, walk-forward (held-out windows of the learning part, model trained before them):",
            result.walk_forward,
        ]
    lines += [
        "",
        "serving part (after the model was published), same signals and outcomes, sized by each policy "
        "(session = UTC day; ret/|sCVaR5| = return / |session CVaR 5%|):",
    ]
    for group, text in result.tables.items():
        lines += [f"-- {group} --", text, ""]
    result.report_path = write_demo_report(settings.data_dir / "reports" / "demo.html", result, sections)
    lines += [f"training report: {result.train_report}", f"demo report:     {result.report_path}"]
    for line in lines:
        out(line)


def write_demo_report(path: Path, result: DemoResult, sections: list[tuple[str, Any]]) -> Path:
    from trainer.backtest.report import COLUMNS, curves, rows  # lazy: loads onnxruntime, onnx, duckdb only when used

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>rlsizer demo</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,td:nth-child(2){text-align:left}</style>",
        "</head><body><h1>rlsizer demo</h1>",
        f"<p>{result.signals} signals; model {html.escape(result.version or 'none')} "
        f"{'promoted and served' if result.served_version else 'promoted' if result.promoted else 'not promoted'}."
        + (
            f" Training report: <a href='{html.escape(result.train_report.as_uri())}'>{html.escape(result.train_report.name)}</a>"
            if result.train_report
            else ""
        )
        + "</p>",
        "<h2>Decisions by policy and model version</h2><table><tr><th>policy</th><th>model</th><th>decisions</th></tr>",
    ]
    parts += [
        f"<tr><td>{html.escape(p)}</td><td>{html.escape(v)}</td><td>{n}</td></tr>" for p, v, n in result.decisions
    ]
    parts.append("</table>")
    if result.walk_forward_rows:
        from trainer.evaluation.report import table_html  # lazy: loads torch, onnxruntime, onnx only when used

        parts.append(
            "<h2>Training round: walk-forward table (held-out windows of the learning part)</h2>"
            f"<p>{html.escape(result.gate_reason)}</p>{table_html(result.walk_forward_rows)}"
        )
    for group, bt in sections:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in COLUMNS)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows(bt))
        parts.append(f"<h2>Serving part: {html.escape(group)}</h2><table><tr>{th}</tr>{trs}</table>")
        parts += [f"<h3>{html.escape(t)}</h3><img alt='{html.escape(t)}' src='{src}'>" for t, src in curves(bt.results)]
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")
    return path


__all__ = ["DEFAULT_MARKETS", "DemoConfig", "DemoResult", "Market", "StackError", "run_demo"]
