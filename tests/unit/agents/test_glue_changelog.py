"""ChangelogWriter is only used where skipping Faust's per-write future changes nothing."""

from __future__ import annotations

import faust
import pytest

from agents.glue.changelog import ChangelogWriter


def test_memory_store_at_least_once_is_accepted():
    ChangelogWriter(faust.App("t-cl-ok", store="memory://", broker="kafka://127.0.0.1:1"))


@pytest.mark.parametrize("conf", [{"store": "rocksdb://"}, {"processing_guarantee": "exactly_once"}])
def test_other_stores_or_exactly_once_are_refused(conf):
    app = faust.App("t-cl-no", broker="kafka://127.0.0.1:1", **{"store": "memory://", **conf})
    with pytest.raises(ValueError, match="ChangelogWriter"):
        ChangelogWriter(app)
