"""``python -m agents.worker [--id N]``: run one Faust worker process with settings from ``RLSIZER_*``."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys

from streams.settings import Settings


def run_worker(settings: Settings, *, worker_id: str, loglevel: str = "info") -> int:
    from faust.worker import Worker

    from agents.app import create_app

    app = create_app(settings, worker_id=worker_id)
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()  # returns when the worker stops (it calls sys.exit)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.worker", description=__doc__)
    parser.add_argument("--id", default="0", help="worker id: names its data dir and Faust client")
    parser.add_argument("--loglevel", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper())
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` dumps every thread's stack to stderr
    return run_worker(Settings.from_env(), worker_id=str(args.id), loglevel=args.loglevel)


if __name__ == "__main__":
    sys.exit(main())
