from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agents import health

NOW = datetime(2024, 3, 6, 15, 0, tzinfo=UTC)  # a Wednesday


def test_data_freshness_fails_when_signals_stop_during_market_hours():
    result = health.data_freshness(NOW, NOW - timedelta(hours=3))
    assert result.status == health.FAIL and "3.0 h" in result.detail
    assert health.data_freshness(NOW, NOW - timedelta(minutes=30)).status == health.OK


def test_data_freshness_ok_when_market_closed():
    saturday = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)
    assert health.data_freshness(saturday, NOW - timedelta(days=3)).status == health.OK
    hours = health.MarketHours(open=time(14, 30), close=time(21, 0))
    assert health.data_freshness(NOW.replace(hour=9), None, hours=hours).status == health.OK


def test_stale_model_asks_for_a_refresh():
    result = health.model_freshness(NOW, NOW - timedelta(hours=49))
    assert (result.status, result.action) == (health.WARN, health.ACTION_REFRESH_MODEL)
    assert health.model_freshness(NOW, NOW - timedelta(hours=1)).action is None


def test_integrity_failure_asks_for_restore():
    result = health.model_integrity(False, "sha256 mismatch")
    assert (result.status, result.action) == (health.FAIL, health.ACTION_RESTORE_MODEL)


def test_training_failures_escalate():
    assert health.training_activity(NOW, NOW, 1).status == health.WARN
    assert health.training_activity(NOW, NOW, 3).status == health.FAIL
    assert health.training_activity(NOW, NOW - timedelta(hours=9), 0).action == health.ACTION_RETRY_TRAINING
    assert health.training_activity(NOW, NOW - timedelta(hours=1), 0).status == health.OK


def test_disk_thresholds():
    assert health.disk_space(96, 100).status == health.FAIL
    assert health.disk_space(90, 100).action == health.ACTION_CLEAN_DISK
    assert health.disk_space(10, 100).status == health.OK


@given(st.integers(0, 60))
def test_backoff_grows_and_is_capped(failures):
    delay = health.backoff_delay(failures, base_seconds=10, cap_seconds=1000)
    assert 0 <= delay <= 1000
    assert health.backoff_delay(failures + 1, base_seconds=10, cap_seconds=1000) >= delay


def test_backoff_doubles():
    assert [health.backoff_delay(n, base_seconds=5) for n in range(4)] == [0.0, 5.0, 10.0, 20.0]


def test_an_unverifiable_champion_has_no_age_and_asks_for_no_refresh():
    result = health.model_freshness(NOW, NOW - timedelta(hours=1), unverified="tampered_manifest: bytes do not match")
    assert (result.status, result.action) == (health.WARN, None)
    assert "age unknown" in result.detail and "tampered_manifest" in result.detail


def test_a_champion_bad_in_the_registry_fails_without_a_restore_it_cannot_do():
    result = health.model_integrity(False, "registry champion v1 fails verification", restorable=False)
    assert (result.status, result.action) == (health.FAIL, None)


def _report(minutes_ago: float, status: str, detail: str = "", check: str = "model_integrity"):
    from schemas.events import HealthChecked

    return HealthChecked(
        ts_event=NOW - timedelta(minutes=minutes_ago), component="worker", check=check, status=status, detail=detail
    )


def test_a_workers_latest_fail_surfaces_until_it_reports_ok_again():
    window = timedelta(hours=24)
    forged = _report(5, "FAIL", "worker 0: forged announcement of v9 as champion")
    result = health.worker_reports(
        NOW, [("0", _report(30, "OK")), ("0", forged), ("1", _report(1, "OK"))], window=window
    )
    assert (
        result.status == health.FAIL and "forged announcement of v9" in result.detail and "5 min ago" in result.detail
    )
    later = health.worker_reports(NOW, [("0", forged), ("0", _report(1, "OK"))], window=window)
    assert later.status == health.OK and "1 worker(s)" in later.detail
    assert health.worker_reports(NOW, [("0", _report(2, "WARN", "S3 down"))], window=window).status == health.WARN


def test_worker_reports_older_than_the_window_do_not_count():
    old = _report(25 * 60, "FAIL", "long ago")
    result = health.worker_reports(NOW, [("0", old)], window=timedelta(hours=24))
    assert result.status == health.OK and "no worker reported" in result.detail


def test_manual_training_rounds_in_the_registry_count_and_clear_older_service_failures():
    service = (NOW - timedelta(hours=3), None, 2)  # the service last tried 3 h ago, failing twice
    assert health.latest_training(service, None) == (None, 2)
    assert health.latest_training(service, NOW - timedelta(hours=1)) == (NOW - timedelta(hours=1), 0)
    assert health.latest_training(service, NOW - timedelta(hours=5)) == (NOW - timedelta(hours=5), 2)
    assert health.latest_training((None, None, 0), NOW - timedelta(hours=1)) == (NOW - timedelta(hours=1), 0)
    result = health.training_activity(NOW, *health.latest_training((None, None, 0), NOW - timedelta(hours=1)))
    assert result.status == health.OK and "1.0 h ago" in result.detail
