"""``rlsizer train`` (one training round, now) and ``rlsizer trainer`` (the scheduled service).

``rlsizer train [--min-outcomes N] [--updates N] [--seed S] [--no-progress]`` replays the topics,
trains, gates, publishes the challenger (and promotes it if the gate says so), then prints the
walk-forward table of the held-out windows, the gate's decision with its numbers, the version and the report path. Exit codes: 0 a model was
published (promoted or not) or the round was skipped for lack of data, 1 the round failed.

``rlsizer trainer [--min-outcomes N] [--updates N]`` runs a round every
``RLSIZER_TRAIN_INTERVAL_SECONDS`` once ``RLSIZER_TRAIN_MIN_NEW_OUTCOMES`` new outcomes arrived,
backing off after failures; SIGTERM stops it after the current round.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from typing import Any

from config.settings import Settings
from streams.codec_factory import make_codec

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    once = subparsers.add_parser("train", help="run one training round now (replay, train, gate, publish)")
    _common(once)
    once.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    once.set_defaults(func=_train)
    service = subparsers.add_parser("trainer", help="run the trainer service: scheduled rounds with backoff")
    _common(service)
    service.set_defaults(func=_trainer, progress=False, kafka_logs=True)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-outcomes", type=int, default=200, help="usable outcomes needed to train (default 200)")
    parser.add_argument("--updates", type=int, default=None, help="PPO updates (default: TrainConfig's)")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: TrainConfig's)")


def _train_config(args: argparse.Namespace) -> Any:
    from trainer.learning.cvar_ppo import TrainConfig  # lazy: keeps `rlsizer --help` fast

    overrides = {k: v for k, v in (("total_updates", args.updates), ("seed", args.seed)) if v is not None}
    return TrainConfig(**overrides)


def _clients(settings: Settings) -> tuple[Any, Any]:
    from models import ModelRegistry  # lazy: keeps `rlsizer --help` fast

    codec = make_codec(settings)
    return codec, ModelRegistry.from_settings(settings)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.round import format_walk_forward, run_round  # lazy: keeps `rlsizer --help` fast

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        codec, registry = _clients(settings)
        result = run_round(
            settings,
            codec=codec,
            registry=registry,
            train_config=_train_config(args),
            min_outcomes=args.min_outcomes,
            progress=args.progress,
        )
    except Exception as exc:  # one line, not a traceback: replay, registry, export or event errors
        from rlsizer.commands.replay import kafka_hint  # lazy: keeps `rlsizer --help` fast

        print(f"rlsizer train: {type(exc).__name__}: {exc}{kafka_hint(exc, settings)}", file=sys.stderr)
        return EXIT_FAILED
    if result.skipped:
        print(result.reason)
        return 0
    print(format_walk_forward(result))
    print()
    print(f"decision: {result.reason}")
    print(
        f"version:  {result.version} ({'champion' if result.promoted else 'challenger'}; parent {result.parent_version or 'none'})"
    )
    print(f"max |torch - onnxruntime|: {result.max_abs_diff:.2e}")
    print(f"report:   {result.report_path}")
    return 0


def _trainer(args: argparse.Namespace, settings: Settings) -> int:

    from streams.stop_flag import StopFlag  # lazy: keeps `rlsizer --help` fast
    from trainer.round import run_round  # lazy: keeps `rlsizer --help` fast
    from trainer.service import (  # lazy: keeps `rlsizer --help` fast
        install_stop_signals,
        kafka_health_publisher,
        run_service,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    codec, registry = _clients(settings)
    round_fn = functools.partial(
        run_round,
        settings,
        codec=codec,
        registry=registry,
        train_config=_train_config(args),
        min_outcomes=args.min_outcomes,
        progress=False,
    )
    stop = StopFlag()
    install_stop_signals(stop)
    run_service(settings, round_fn=round_fn, publish_health=kafka_health_publisher(settings, codec), stop=stop)
    return 0
