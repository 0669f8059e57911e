"""The Faust worker the worker and the pass-through bench run under (agents.glue.faust.transport)."""

from __future__ import annotations

import logging

import faust
import pytest

from agents.glue.faust.transport import faust_worker


@pytest.fixture
def restored_root_logger():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_worker_logs_at_its_level_not_debug(restored_root_logger):
    app = faust.App("t-logging", broker="kafka://127.0.0.1:1")  # nothing connects before start
    worker = faust_worker(app, loglevel="warning")
    worker._setup_logging()  # what execute_from_commandline does first
    assert restored_root_logger.level == logging.WARNING
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)


def test_objects_alive_at_startup_are_frozen_out_of_collection(restored_root_logger):
    import asyncio
    import gc

    app = faust.App("t-freeze", broker="kafka://127.0.0.1:1")
    worker = faust_worker(app, loglevel="warning")
    assert worker.shortlabel == "Worker"  # rlsizer.stack.services waits for "[^Worker]: Ready" in its log
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        asyncio.run(worker.on_startup_finished())
        assert gc.get_freeze_count() > 1000  # everything imported and built so far
    finally:
        gc.unfreeze()
