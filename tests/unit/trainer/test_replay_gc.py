"""The replay consumes with automatic garbage collection off, collecting young objects itself (trainer.warehouse.replay)."""

from __future__ import annotations

import gc

import pytest

from tests.unit.trainer.gc_watch import collected_generations
from trainer.warehouse.replay import young_collections_only


@pytest.fixture
def collections():
    """The generations collected while the test runs, and the collector's state restored after it."""
    was_enabled = gc.isenabled()
    with collected_generations() as seen:
        yield seen
    gc.enable() if was_enabled else gc.disable()


def test_automatic_collection_is_off_inside_and_back_after(collections):
    gc.enable()
    with young_collections_only() as collect_young:
        assert not gc.isenabled()
        collections.clear()
        collect_young()
        assert collections == [1]  # the young generations only, never a walk of the whole heap
    assert gc.isenabled()


def test_collection_comes_back_after_an_error(collections):
    gc.enable()
    with pytest.raises(RuntimeError, match="write failed"), young_collections_only():
        raise RuntimeError("write failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off_and_nothing_is_collected(collections):
    gc.disable()
    with young_collections_only() as collect_young:
        collections.clear()
        collect_young()
        assert collections == []
    assert not gc.isenabled()
