"""Probes: gather the facts the pure checks in ``agents.health`` judge (the I/O side).

Each probe is ``(now) -> CheckResult`` and is built from settings plus the clients
it needs; ``standard_checks`` wires the full set for a deployment.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from confluent_kafka import Consumer, TopicPartition

from agents import health
from agents.health import CheckResult
from rlsizer.health_monitor import ScheduledCheck
from rlsizer.recovery import model_integrity_probe
from streams.security import kafka_login_error, registry_requests_kwargs
from streams.settings import Settings
from streams.end_offsets import end_offsets
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
            requests.get(f"{settings.registry_url}/subjects", timeout=3, **registry_requests_kwargs(settings)).raise_for_status()
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
                kind, ms = msg.timestamp()
                if ms > 0:
                    ts = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
                    newest = ts if newest is None or ts > newest else newest
        return newest
    finally:
        consumer.close()


def data_probe(settings: Settings, hours: health.MarketHours = health.MarketHours()) -> Callable[[datetime], CheckResult]:
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


def training_probe(settings: Settings) -> Callable[[datetime], CheckResult]:
    def probe(now: datetime) -> CheckResult:
        status = load_status(settings.data_dir)
        return health.training_activity(now, status.last_success, status.consecutive_failures)
    return probe


def champion_created(registry: Any) -> datetime | None:
    """When the registry's champion was created (None: no champion, or its manifest is unreadable)."""
    version = registry.champion()
    manifest = registry.show(version).manifest if version else None
    return manifest.created_at if manifest else None


def model_probe(champion_created: Callable[[], datetime | None]) -> Callable[[datetime], CheckResult]:
    return lambda now: health.model_freshness(now, champion_created())


def standard_checks(settings: Settings, *, s3_client_factory: Callable[[], Any],
                    registry_factory: Callable[[], Any]) -> list[ScheduledCheck]:
    """Every check, for ``rlsizer health`` (once) and ``rlsizer monitor`` (on its interval) alike."""
    every = timedelta(seconds=settings.health_interval_seconds)
    return [
        ScheduledCheck(component="kafka", name="reach_kafka", probe=kafka_probe(settings), interval=every),
        ScheduledCheck(component="s3", name="reach_s3", probe=s3_probe(settings, s3_client_factory), interval=every),
        ScheduledCheck(component="registry", name="reach_registry", probe=registry_probe(settings), interval=every),
        ScheduledCheck(component="host", name="disk_space", probe=disk_probe(settings), interval=every),
        ScheduledCheck(component="bot", name="data_freshness", probe=data_probe(settings), interval=every),
        ScheduledCheck(component="worker", name="consumer_lag", probe=lag_probe(settings), interval=every),
        ScheduledCheck(component="model", name="model_freshness",
                       probe=model_probe(lambda: champion_created(registry_factory())), interval=every),
        ScheduledCheck(component="model", name="model_integrity", probe=model_integrity_probe(settings, registry_factory),
                       interval=every),
        ScheduledCheck(component="trainer", name="training_activity", probe=training_probe(settings), interval=every),
    ]
