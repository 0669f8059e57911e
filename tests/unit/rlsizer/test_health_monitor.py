from datetime import UTC, datetime, timedelta

from agents import health
from agents.health import CheckResult
from rlsizer.health.monitor import HealthMonitor, ScheduledCheck
from trainer.status import TrainerStatus, load_status, save_status


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 6, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_each_check_runs_on_its_own_interval():
    clock = Clock()
    calls: list[str] = []

    def probe(name):
        def run(now):
            calls.append(name)
            return CheckResult(check=name, status=health.OK, detail="fine")

        return run

    monitor = HealthMonitor(
        checks=[
            ScheduledCheck(component="c", name="fast", probe=probe("fast"), interval=timedelta(minutes=1)),
            ScheduledCheck(component="c", name="slow", probe=probe("slow"), interval=timedelta(minutes=30)),
        ],
        publish=lambda e: None,
        clock=clock,
    )
    monitor.run_due()
    clock.now += timedelta(minutes=2)
    monitor.run_due()
    assert calls == ["fast", "slow", "fast"]
    assert 0 < monitor.seconds_until_next() <= 60


def test_failing_check_runs_its_recovery_and_reports_it():
    published = []
    restored = []
    monitor = HealthMonitor(
        checks=[
            ScheduledCheck(
                component="worker",
                name="model_integrity",
                probe=lambda now: health.model_integrity(False, "sha256 mismatch"),
            )
        ],
        publish=published.append,
        actions={health.ACTION_RESTORE_MODEL: lambda: restored.append(1) or "restored v2 from backup"},
        clock=Clock(),
    )
    [event] = monitor.run_all()
    assert restored == [1]
    assert event.status == "FAIL" and event.action == "restore_model: restored v2 from backup"
    assert published == [event] and monitor.overall() == "FAIL"


def test_broken_probe_or_action_never_stops_the_monitor():
    def boom(now):
        raise ConnectionError("S3 down")

    def bad_action():
        raise RuntimeError("disk full")

    monitor = HealthMonitor(
        checks=[
            ScheduledCheck(component="s3", name="reach", probe=boom),
            ScheduledCheck(component="host", name="disk", probe=lambda now: health.disk_space(99, 100)),
        ],
        publish=lambda e: (_ for _ in ()).throw(OSError("broker down")),
        actions={health.ACTION_CLEAN_DISK: bad_action},
        clock=Clock(),
    )
    first, second = monitor.run_all()
    assert first.status == "FAIL" and "ConnectionError: S3 down" in first.detail
    assert second.action == "clean_disk failed: RuntimeError: disk full"


def test_trainer_status_roundtrip_and_missing_file(tmp_path):
    assert load_status(tmp_path) == TrainerStatus()
    now = datetime(2024, 1, 1, tzinfo=UTC)
    status = TrainerStatus().failed(now, "boom").failed(now, "boom again")
    assert status.consecutive_failures == 2
    save_status(tmp_path, status.succeeded(now, version="v1", outcomes=10))
    loaded = load_status(tmp_path)
    assert loaded.consecutive_failures == 0 and loaded.last_success == now and loaded.last_version == "v1"
