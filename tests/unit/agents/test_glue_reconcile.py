"""ReconcileState: which signals the reconciler re-publishes, and which offsets it commits."""

from agents.glue.reconcile import ReconcileState


def test_a_skipped_signal_is_due_but_a_queued_one_is_not():
    st = ReconcileState(after_s=2.0)
    st.saw_signal("a", 0, 10, b"k", b"va", now=0.0)
    st.saw_signal("b", 0, 11, b"k", b"vb", now=0.0)
    st.saw_signal("c", 1, 5, b"k", b"vc", now=0.0)
    assert st.due(now=5.0) == []  # nothing decided after them: the worker is behind, not skipping
    st.saw_decision("b", 0, 100)  # b (offset 11) decided, a (offset 10) was overtaken
    due = st.due(now=5.0)
    assert [p.offset for p in due] == [10]
    assert st.due(now=5.5) == []  # rescheduled, not re-sent on every scan
    assert [p.offset for p in st.due(now=7.1)] == [10]


def test_commit_keeps_the_oldest_undecided_signal():
    st = ReconcileState(after_s=2.0)
    for i, sid in enumerate("abc"):
        st.saw_signal(sid, 0, i, None, b"v", now=0.0)
    st.saw_decision("a", 0, 7)
    st.saw_decision("c", 0, 8)
    offsets = {(tp.topic, tp.partition): tp.offset for tp in st.commit_offsets("s", "d")}
    assert offsets == {("s", 0): 1, ("d", 0): 9}
    st.saw_decision("b", 0, 9)
    offsets = {(tp.topic, tp.partition): tp.offset for tp in st.commit_offsets("s", "d")}
    assert offsets[("s", 0)] == 3


def test_a_decided_or_duplicate_signal_is_not_pending_again():
    st = ReconcileState(after_s=1.0)
    st.saw_decision("a", 0, 0)
    st.saw_signal("a", 0, 4, None, b"v", now=0.0)
    st.saw_signal("b", 0, 5, None, b"v", now=0.0)
    st.saw_signal("b", 0, 9, None, b"v", now=0.0)  # re-published copy
    assert list(st.pending) == ["b"] and st.pending["b"].offset == 5
    st.forget({0})
    assert st.pending == {} and st.commit_offsets("s", "d") == []


def test_a_decision_read_before_its_signal_still_exposes_an_earlier_skipped_one():
    """After a takeover the reconciler catches up both topics in any order."""
    st = ReconcileState(after_s=2.0)
    st.saw_signal("a", 0, 10, b"k", b"va", now=0.0)  # skipped by the worker
    st.saw_decision("b", 0, 50)  # b's decision arrives before b itself
    st.saw_signal("b", 0, 11, b"k", b"vb", now=0.0)
    assert [p.offset for p in st.due(now=2.5)] == [10]
    st2 = ReconcileState(after_s=2.0)
    st2.saw_decision("b", 1, 50)
    st2.saw_signal("b", 1, 11, b"k", b"vb", now=0.0)
    st2.saw_signal("c", 1, 12, b"k", b"vc", now=0.0)  # after b: merely queued
    assert st2.due(now=5.0) == []
