"""Fixtures shared by the trainer's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from trainer.warehouse.store import Warehouse, create_schema


@pytest.fixture()
def warehouse() -> Iterator[Warehouse]:
    """An empty warehouse of the current schema, in memory."""
    con = duckdb.connect()
    create_schema(con)
    with Warehouse(Path(":memory:"), con, rebuilt_from=None) as wh:
        yield wh
