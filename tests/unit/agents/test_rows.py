"""agents.rows.Rows against plain tuples: same rows after any insertions, and no view ever changes."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

import agents.rows as rows_module
from agents.rows import Rows


def model_inserted(rows: tuple, lo: int, at: int, row: tuple, keep: int) -> tuple[tuple, list, list]:
    merged = (*rows[lo:at], row, *rows[at:])
    kept = merged[-keep:] if len(merged) > keep else merged
    gone = rows[:lo] + merged[: len(merged) - len(kept)]
    return kept, [r[0] for r in gone], [r[2] for r in gone]


def as_tuples(r: Rows) -> tuple:
    return tuple(zip(r.ids, r.ts, r.values, strict=True))


step = st.tuples(
    st.integers(0, 50),  # which earlier Rows to start from
    st.integers(0, 30),  # timestamp of the new row
    st.integers(0, 12),  # horizon: rows before it are dropped
    st.integers(1, 9),  # keep
    st.booleans(),  # insert, or remove an id
)


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=60))
def test_rows_behave_as_tuples_and_views_never_change(steps):
    with patch.object(rows_module, "COMPACT_FROM", 2):  # compact often
        history: list[tuple[Rows, tuple]] = [(Rows([], [], []), ())]
        for n, (pick, ts, horizon, keep, insert) in enumerate(steps):
            r, model = history[pick % len(history)]
            if insert or not model:
                lo, at = r.ts_left(horizon), r.ts_right(ts, r.ts_left(horizon))
                assert lo == sum(1 for x in model if x[1] < horizon)
                if at >= lo:
                    got, gone_ids, gone_values = r.inserted(lo, at, (f"s{n}", ts, float(n)), keep)
                    want, want_ids, want_values = model_inserted(model, lo, at, (f"s{n}", ts, float(n)), keep)
                    assert (gone_ids, gone_values) == (want_ids, want_values)
                    history.append((got, want))
            else:
                sid = model[ts % len(model)][0]
                got, gone = r.without(sid)
                history.append((got, tuple(x for x in model if x[0] != sid)))
                assert gone == [x[2] for x in model if x[0] == sid]
            for earlier, earlier_model in history:  # every view, old and new, still holds its rows
                assert as_tuples(earlier) == earlier_model and len(earlier) == len(earlier_model)


def test_appending_to_the_newest_rows_shares_the_lists_and_an_older_view_copies():
    a = Rows(["x"], [1], [1.0])
    b, _, _ = a.inserted(0, 1, ("y", 2, 2.0), keep=10)
    assert b._ids is a._ids  # appended in place: a's view [0, 1) does not see it
    c, _, _ = a.inserted(0, 1, ("z", 3, 3.0), keep=10)  # a is no longer the newest: copy
    assert c._ids is not a._ids and as_tuples(b) == (("x", 1, 1.0), ("y", 2, 2.0)) and c.ids == ("x", "z")
