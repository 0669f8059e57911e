from agents.glue.bar_clock import BarClock, interval_us

H = 3_600_000_000


def test_intervals():
    assert interval_us("1h") == H and interval_us("15m") == 15 * 60_000_000 and interval_us("1d") == 24 * H
    assert interval_us("weird") is None


def test_only_a_due_bar_is_waited_for():
    clock = BarClock()
    assert not clock.bar_due(b"X", 10 * H)  # no bar yet: the fallback decides, no wait
    clock.saw_bar(b"X", 10 * H, "1h")
    assert not clock.bar_due(b"X", 10 * H)  # the signal's own bar is applied
    assert not clock.bar_due(b"X", 10 * H + 1)  # intra-bar signal: nothing to wait for
    assert clock.bar_due(b"X", 11 * H)  # the bar closing at 11:00 should come first


def test_a_timeout_marks_the_symbol_lagging_until_its_next_bar():
    clock = BarClock()
    clock.saw_bar(b"X", 10 * H, "1h")
    clock.timed_out(b"X")
    assert not clock.bar_due(b"X", 12 * H)
    clock.saw_bar(b"X", 11 * H, "1h")
    assert clock.bar_due(b"X", 12 * H)
