"""Probes: gather the facts the pure checks in ``agents.health`` judge (the I/O side).

Each probe is ``(now) -> CheckResult`` and is built from settings plus the clients
it needs; ``standard_checks`` wires the full set for a deployment.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from confluent_kafka import Consumer, TopicPartition

from agents import health
from agents.health import CheckResult
from config.security import registry_requests_kwargs
from config.settings import Settings
from models.errors import ModelVerificationError
from rlsizer.health.monitor import ScheduledCheck
from rlsizer.health.recovery import model_integrity_probe
from schemas.codec import DecodeError
from streams.codec_factory import make_codec
from streams.end_offsets import end_offsets
from streams.login import kafka_login_error
from streams.topics import inputs_topic, worker_group_id
from trainer.status import load_status


def kafka_probe(settings: Settings) -> Callable[[datetime], CheckResult]:
    def probe(now: datetime) -> CheckResult:
        problem = kafka_login_error(settings, timeout=5.0)
        if problem is not None:
            return health.reachability("kafka", problem)
        return health.reachability("kafka", None)

    return probe


def s3_probe(settings: Settings, client_factory: Callable[[], Any]) -> Callable[[datetime], CheckResult]:
    def probe(now: datetime) -> CheckResult:
        try:
            client_factory().head_bucket(Bucket=settings.s3_bucket)
        except Exception as exc:
            return health.reachability("s3", f"{settings.s3_endpoint}: {type(exc).__name__}: {exc}")
        return health.reachability("s3", None)

    return probe


def registry_probe(settings: Settings) -> Callable[[datetime], CheckResult]:
    def probe(now: datetime) -> CheckResult:
        try:
            requests.get(
                f"{settings.registry_url}/subjects", timeout=3, **registry_requests_kwargs(settings)
            ).raise_for_status()
        except Exception as exc:
            return health.reachability("registry", f"{settings.registry_url}: {exc}")
        return health.reachability("registry", None)

    return probe


def disk_probe(settings: Settings) -> Callable[[datetime], CheckResult]:
    def probe(now: datetime) -> CheckResult:
        path = settings.data_dir if settings.data_dir.exists() else settings.data_dir.resolve().parent
        usage = shutil.disk_usage(path)
        return health.disk_space(usage.used, usage.total)

    return probe


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer({**settings.kafka_config(), "group.id": group, "enable.auto.commit": False, "log_level": 0})


def last_message_time(settings: Settings, topic: str) -> datetime | None:
    """Broker timestamp of the newest record of ``topic`` (reads the last record of each partition)."""
    consumer = _consumer(settings, "rlsizer-health-probe")
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        ends = end_offsets(settings.kafka_config(), [(topic, p) for p in meta.partitions], mode=settings.end_offsets)
        newest: datetime | None = None
        for (_, partition), end in ends.items():
            if end <= 0:
                continue
            consumer.assign([TopicPartition(topic, partition, end - 1)])
            msg = consumer.poll(2.0)
            if msg is not None and msg.error() is None:
                _kind, ms = msg.timestamp()
                if ms > 0:
                    ts = datetime.fromtimestamp(ms / 1000, tz=UTC)
                    newest = ts if newest is None or ts > newest else newest
        return newest
    finally:
        consumer.close()


def data_probe(
    settings: Settings, hours: health.MarketHours = health.MarketHours()
) -> Callable[[datetime], CheckResult]:
    def probe(now: datetime) -> CheckResult:
        return health.data_freshness(now, last_message_time(settings, inputs_topic(settings)), hours=hours)

    return probe


def consumer_lag(settings: Settings, topic: str, group: str | None = None) -> int:
    """Records of ``topic`` the workers' group has not committed, against the true ends (``streams.end_offsets``)."""
    consumer = _consumer(settings, group or worker_group_id(settings))
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        ends = end_offsets(settings.kafka_config(), [(topic, p) for p in meta.partitions], mode=settings.end_offsets)
        lag = 0
        for tp in consumer.committed(parts, timeout=5):
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5)
            lag += max(0, ends[(topic, tp.partition)] - (tp.offset if tp.offset >= 0 else low))
        return lag
    finally:
        consumer.close()


def lag_probe(settings: Settings) -> Callable[[datetime], CheckResult]:
    return lambda now: health.consumer_lag(consumer_lag(settings, inputs_topic(settings)))


def newest_round(registry: Any, *, tries: int = 5) -> datetime | None:
    """When the newest model version in the registry was created (its manifest's signature checked).

    Every completed training round publishes a version, the trainer service's and a manual
    ``rlsizer train``'s alike. Versions whose manifest does not verify are skipped (``tries`` at most).
    """

    for version in reversed(registry.list_versions()[-tries:]):
        try:
            created: datetime = registry.read_manifest(version).created_at
            return created
        except ModelVerificationError:
            continue
    return None


def training_probe(settings: Settings, registry_factory: Callable[[], Any]) -> Callable[[datetime], CheckResult]:
    """Training activity from the trainer service's status and the model registry (manual rounds count)."""

    def probe(now: datetime) -> CheckResult:
        status = load_status(settings.data_dir)
        last, failures = health.latest_training(
            (status.last_attempt, status.last_success, status.consecutive_failures), newest_round(registry_factory())
        )
        return health.training_activity(now, last, failures)

    return probe


def champion_age(registry: Any) -> tuple[datetime | None, str | None]:
    """When the registry's champion was created, from its verified manifest; or why that cannot be known.

    ``(None, None)``: no champion. A manifest that fails its signature is never read for its date.
    """

    try:
        version = registry.champion()
        return (None, None) if version is None else (registry.read_manifest(version).created_at, None)
    except ModelVerificationError as exc:
        return None, str(exc)


def model_probe(champion_age: Callable[[], tuple[datetime | None, str | None]]) -> Callable[[datetime], CheckResult]:
    def probe(now: datetime) -> CheckResult:
        created, problem = champion_age()
        return health.model_freshness(now, created, unverified=problem)

    return probe


def worker_reports(settings: Settings, codec: Any, since: datetime) -> list[tuple[str, Any]]:
    """``(worker, HealthChecked)`` the workers sent about themselves since ``since`` (keyed ``worker/<id>``).

    Each partition of the health topic is read from the first record at or after ``since``
    (the broker's time index) up to its end at the time of the call; other records are skipped
    without decoding.
    """
    topic = settings.topic("health")
    consumer = _consumer(settings, "rlsizer-health-probe")
    found: list[tuple[str, Any]] = []
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return found
        since_ms = int(since.timestamp() * 1000)
        starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in meta.partitions], timeout=5)
        ends = end_offsets(settings.kafka_config(), [(topic, p) for p in meta.partitions], mode=settings.end_offsets)
        for start in starts:
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, start.partition), timeout=5)
            high = ends[(topic, start.partition)]  # the true end: tansu's watermark is short (streams.end_offsets)
            first = start.offset if start.offset >= 0 else high  # -1: nothing at or after ``since``
            if first >= high:
                continue
            consumer.assign([TopicPartition(topic, start.partition, max(first, low))])
            found += _read_until(consumer, high, codec)
        return found
    finally:
        consumer.close()


def _read_until(consumer: Consumer, end: int, codec: Any, timeout_s: float = 10.0) -> list[tuple[str, Any]]:
    """The worker reports up to offset ``end``. An undecodable record is skipped; an unreachable schema
    registry, or an end not reached in time, raises (the probe FAILs: unread reports are not "no reports")."""

    prefix = health.WORKER_REPORT_KEY_PREFIX.encode()
    found: list[tuple[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        key = msg.key() or b""
        if key.startswith(prefix):
            with contextlib.suppress(DecodeError):  # not a HealthChecked a worker wrote; not ours to judge here
                found.append((key[len(prefix) :].decode(errors="replace"), codec.decode(msg.value())))
        offset = msg.offset()
        if offset is not None and offset >= end - 1:
            return found
    raise TimeoutError(f"the health topic was not read to its end (offset {end}) within {timeout_s:.0f} s")


def worker_reports_probe(settings: Settings, codec_factory: Callable[[], Any]) -> Callable[[datetime], CheckResult]:
    window = timedelta(seconds=settings.health_report_window_seconds)

    def probe(now: datetime) -> CheckResult:
        return health.worker_reports(now, worker_reports(settings, codec_factory(), now - window), window=window)

    return probe


def standard_checks(
    settings: Settings,
    *,
    s3_client_factory: Callable[[], Any],
    registry_factory: Callable[[], Any],
    codec_factory: Callable[[], Any] | None = None,
) -> list[ScheduledCheck]:
    """Every check, for ``rlsizer health`` (once) and ``rlsizer monitor`` (on its interval) alike."""
    if codec_factory is None:

        def codec_factory() -> Any:
            return make_codec(settings)

    every = timedelta(seconds=settings.health_interval_seconds)
    return [
        ScheduledCheck(component="kafka", name="reach_kafka", probe=kafka_probe(settings), interval=every),
        ScheduledCheck(component="s3", name="reach_s3", probe=s3_probe(settings, s3_client_factory), interval=every),
        ScheduledCheck(component="registry", name="reach_registry", probe=registry_probe(settings), interval=every),
        ScheduledCheck(component="host", name="disk_space", probe=disk_probe(settings), interval=every),
        ScheduledCheck(component="bot", name="data_freshness", probe=data_probe(settings), interval=every),
        ScheduledCheck(component="worker", name="consumer_lag", probe=lag_probe(settings), interval=every),
        ScheduledCheck(
            component="model",
            name="model_freshness",
            probe=model_probe(lambda: champion_age(registry_factory())),
            interval=every,
        ),
        ScheduledCheck(
            component="model",
            name="model_integrity",
            probe=model_integrity_probe(settings, registry_factory),
            interval=every,
        ),
        ScheduledCheck(
            component="worker",
            name="worker_reports",
            probe=worker_reports_probe(settings, codec_factory),
            interval=every,
        ),
        ScheduledCheck(
            component="trainer",
            name="training_activity",
            probe=training_probe(settings, registry_factory),
            interval=every,
        ),
    ]
