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


# -- Reconciler._record_all: what a consumed batch tells the state -----------------------------

from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import struct  # noqa: E402

from agents.glue.reconcile import Reconciler  # noqa: E402
from schemas.codec import EventCodec, InMemoryRegistry  # noqa: E402
from schemas.events import SignalRaised, SizeDecided  # noqa: E402
from streams.settings import Settings  # noqa: E402

T = datetime(2024, 1, 2, 15, tzinfo=timezone.utc)


@dataclass
class _Msg:  # the accessors of a confluent_kafka.Message the reconciler reads
    _topic: str
    _partition: int
    _offset: int
    _value: bytes

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"AAPL"

    def value(self) -> bytes:
        return self._value


def _signal(sid: str, strategy: str = "S1") -> SignalRaised:
    return SignalRaised(ts_event=T, signal_id=sid, strategy_id=strategy, symbol="AAPL", side="BUY", price=100.0,
                        atr=2.0, score=0.5, q_score=0.5, base_qty=10.0, stop_price=96.0, target_price=106.0, adapter="t")


def _decision(sid: str) -> SizeDecided:
    return SizeDecided(ts_event=T, signal_id=sid, symbol="AAPL", strategy_id="S1", multiplier=1.0, qty=10.0,
                       policy="RULES", reason="t", latency_us=1)


def test_a_consumed_batch_is_tracked_in_order_and_bad_records_are_left_to_the_worker():
    settings, codec = Settings(), EventCodec(InMemoryRegistry())
    sig_t, dec_t = settings.topic("signals"), settings.topic("decisions")
    rec = Reconciler(settings, codec, consumer=None, producer=None, after_s=2.0,  # type: ignore[arg-type]
                     decidable=lambda strategy_id: strategy_id != "S99")
    msgs = [
        _Msg(sig_t, 0, 10, codec.encode(sig_t, _signal("a"))),
        _Msg(sig_t, 0, 11, b"\x00garbage"),                        # undecodable: the worker dead-letters it
        _Msg(sig_t, 0, 12, codec.encode(sig_t, _signal("b", "S99"))),  # unknown strategy: never decided
        _Msg(dec_t, 0, 3, codec.encode(dec_t, _decision("c"))),     # decision read before its signal
        _Msg(sig_t, 0, 13, codec.encode(sig_t, _signal("c"))),
        _Msg(dec_t, 0, 4, codec.encode(sig_t, _signal("d"))),       # a signal on the decisions topic: ignored
        _Msg(sig_t, 0, 14, codec.encode(sig_t, _signal("e"))),
    ]
    rec._record_all(msgs)
    st = rec.state
    assert sorted(st.pending) == ["a", "e"]
    assert st.pending["a"].offset == 10 and st.pending["e"].value == msgs[-1].value()
    assert "b" in st.decided and "c" in st.decided and "d" not in st.decided
    assert st.decided_upto[0] == 13  # c's signal was past its decision: the worker got that far
    assert st.next_signal_offset[0] == 15 and st.next_decision_offset[0] == 4


class _Producer:  # records what the reconciler would re-publish
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def produce(self, topic: str, *, value: bytes, key: bytes, partition: int) -> None:
        self.sent.append((topic, value, partition))


def test_a_due_signal_is_decoded_in_full_and_an_invalid_one_is_dropped_not_republished():
    """Ids are read from the head only; a NaN price further on is found when the signal is due."""
    settings, codec = Settings(), EventCodec(InMemoryRegistry())
    sig_t, dec_t = settings.topic("signals"), settings.topic("decisions")
    producer = _Producer()
    rec = Reconciler(settings, codec, consumer=None, producer=producer, after_s=2.0)  # type: ignore[arg-type]
    good = codec.encode(sig_t, _signal("good"))
    price = struct.pack("<d", 100.0)
    assert good.count(price) == 1
    bad = codec.encode(sig_t, _signal("bad")).replace(price, struct.pack("<d", float("nan")))
    rec._record_all([_Msg(sig_t, 0, 1, good), _Msg(sig_t, 0, 2, bad), _Msg(sig_t, 0, 3, codec.encode(sig_t, _signal("later"))),
                     _Msg(dec_t, 0, 0, codec.encode(dec_t, _decision("later")))])
    assert sorted(rec.state.pending) == ["bad", "good"]  # both overtaken by a decided later signal
    rec._republish_due(now=rec.state.pending["good"].due)
    assert producer.sent == [(sig_t, good, 0)]
    assert list(rec.state.pending) == ["good"] and rec.republished == 1


def test_a_skipped_signal_older_than_the_retention_is_dropped_as_the_worker_dead_letters_it():
    """With ``decided_retention_days`` the worker refuses a signal that old; re-publishing it would never end."""
    from dataclasses import replace
    from datetime import timedelta

    settings, codec = Settings(decided_retention_days=1.0), EventCodec(InMemoryRegistry())
    sig_t, dec_t = settings.topic("signals"), settings.topic("decisions")
    producer = _Producer()
    rec = Reconciler(settings, codec, consumer=None, producer=producer, after_s=2.0)  # type: ignore[arg-type]
    old = codec.encode(sig_t, _signal("old"))  # at T
    recent = codec.encode(sig_t, replace(_signal("recent"), ts_event=T + timedelta(hours=23)))
    later = replace(_decision("later"), ts_event=T + timedelta(days=1, hours=1))
    rec._record_all([_Msg(sig_t, 0, 1, old), _Msg(sig_t, 0, 2, recent),
                     _Msg(sig_t, 0, 3, codec.encode(sig_t, replace(_signal("later"), ts_event=later.ts_event))),
                     _Msg(dec_t, 0, 0, codec.encode(dec_t, later))])
    assert rec.state.watermarks == {"AAPL": int((later.ts_event - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 10**6)}
    assert sorted(rec.state.pending) == ["old", "recent"]
    rec._republish_due(now=rec.state.pending["old"].due)
    assert producer.sent == [(sig_t, recent, 0)]  # 25 h older than AAPL's latest decision: dropped; 2 h: re-published
    assert list(rec.state.pending) == ["recent"]


def test_without_retention_no_signal_is_stale():
    st = ReconcileState(after_s=1.0)
    st.saw_decision("a", 0, 0, symbol="AAPL", ts_us=10**15)
    assert st.watermarks == {"AAPL": 10**15} and not st.stale("AAPL", 0)
    st.saw_decision("b", 0, 1, symbol="AAPL", ts_us=5)  # an older decision does not move it back
    assert st.watermarks == {"AAPL": 10**15}


def test_a_signal_from_the_future_is_settled_on_sight_as_the_worker_dead_letters_it():
    """The worker refuses a ts_event more than ``max_future_seconds`` ahead (future_timestamp): never pending here."""
    from dataclasses import replace
    from datetime import timedelta

    from schemas.events import utc_now

    settings, codec = Settings(), EventCodec(InMemoryRegistry())
    sig_t = settings.topic("signals")
    rec = Reconciler(settings, codec, consumer=None, producer=_Producer(), after_s=2.0)  # type: ignore[arg-type]
    now = utc_now()
    ahead = replace(_signal("ahead"), ts_event=now + timedelta(days=3650))
    near = replace(_signal("near"), ts_event=now + timedelta(seconds=60))
    rec._record_all([_Msg(sig_t, 0, 4, codec.encode(sig_t, ahead)), _Msg(sig_t, 0, 5, codec.encode(sig_t, near))])
    assert list(rec.state.pending) == ["near"] and "ahead" in rec.state.decided
    assert rec.state.next_signal_offset == {0: 6}

    off = Reconciler(Settings(max_future_seconds=0.0), codec, consumer=None, producer=_Producer(), after_s=2.0)  # type: ignore[arg-type]
    off._record_all([_Msg(sig_t, 0, 4, codec.encode(sig_t, ahead))])
    assert list(off.state.pending) == ["ahead"]  # no limit: tracked like any signal


def test_records_read_while_the_registry_is_away_are_tracked_once_it_answers_none_skipped():
    from functools import partial

    from agents.glue.registry_wait import call_once_registry_answers
    from tests.unit.agents.test_glue_decode import _Flaky

    inner = InMemoryRegistry()
    settings = Settings()
    sig_t = settings.topic("signals")
    value = EventCodec(inner).encode(sig_t, _signal("a"))
    rec = Reconciler(settings, EventCodec(_Flaky(inner, fails=2)), consumer=None, producer=_Producer(),  # type: ignore[arg-type]
                     after_s=2.0)
    rec._stop.wait = lambda seconds: False  # type: ignore[method-assign]  # no real waiting in a unit test
    call_once_registry_answers(partial(rec._record_all, [_Msg(sig_t, 0, 3, value)]), rec._stop, "reconciler")  # as _run
    assert list(rec.state.pending) == ["a"] and rec.state.next_signal_offset == {0: 4}
