"""The monitor's recovery actions against the real S3 and broker: refresh a stale champion, clean disk."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from config.settings import Settings
from models import ModelRegistry
from models.cache import ModelCache
from rlsizer.health import recovery
from schemas.events import ModelPublished
from streams.topics import ensure_topics, new_topics
from tests.integration.test_tamper_recover import draft
from tests.unit.trainer.backtest_live import tiny_model

pytestmark = pytest.mark.integration


@pytest.fixture
def rsettings(settings: Settings, tmp_path: Path) -> Settings:
    s = replace(
        settings,
        topic_prefix=f"rc{uuid.uuid4().hex[:8]}",
        topic_partitions=1,
        data_dir=tmp_path,
        model_name=f"recover-{uuid.uuid4().hex[:8]}",
    )
    ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
    return s


def test_refresh_reannounces_the_champion_on_the_models_topic(rsettings: Settings, codec) -> None:
    s = rsettings
    registry = ModelRegistry.from_settings(s)
    assert "no champion" in recovery.refresh_champion(s, lambda: registry, lambda e: None)
    version = registry.publish(tiny_model(seed=5), draft("r1"), alias="champion").manifest.version
    sent: list[ModelPublished] = []
    assert recovery.refresh_champion(s, lambda: registry, sent.append) == f"re-announced champion {version}"
    assert [(e.version, e.alias) for e in sent] == [(version, "champion")]


def test_clean_disk_keeps_the_champion_and_recent_reports(rsettings: Settings) -> None:
    s = rsettings
    registry = ModelRegistry.from_settings(s)
    cache = ModelCache(s.data_dir / "worker" / "w1" / "models", registry)
    versions = [
        registry.publish(tiny_model(seed=i), draft(f"c{i}"), alias="champion").manifest.version for i in range(4)
    ]
    for v in versions:
        assert cache.load(v).model is not None
    cache.mark_champion(versions[0])
    reports = s.data_dir / "reports"
    reports.mkdir()
    for i in range(recovery.KEEP_REPORTS + 5):
        path = reports / f"r{i:02d}.html"
        path.write_text("x")
        os.utime(path, (time.time() - 1000 + i, time.time() - 1000 + i))
    (s.data_dir / "warehouse.duckdb.bad-20240101T000000Z").write_text("x")
    result = recovery.clean_disk(s, lambda: registry)
    assert result.startswith("removed ")
    assert sorted(cache.cached_versions()) == sorted([versions[0], versions[2], versions[3]])  # champion + 2 newest
    kept = sorted(p.name for p in reports.glob("*.html"))
    assert len(kept) == recovery.KEEP_REPORTS and kept[0] == "r05.html"
    assert not list(s.data_dir.glob("*.bad-*"))


def _age(directory: Path, seconds: float) -> None:
    old = time.time() - seconds
    for p in [*directory.rglob("*"), directory]:
        os.utime(p, (old, old))


def test_clean_disk_removes_the_dirs_of_workers_that_are_gone_only(rsettings: Settings) -> None:
    import subprocess
    import sys

    s = rsettings
    registry = ModelRegistry.from_settings(s)
    root = s.data_dir / "worker"
    for name in ("live", "gone", "restarting"):
        (root / name / "models").mkdir(parents=True)
        (root / name / "models" / "x.onnx").write_bytes(b"x")
    # a live worker: another process holds its dir's lock, as agents.worker does
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from streams.dir_lock import DirLock\n"
            f"lock = DirLock({str(root / 'live')!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        _age(root / "live", 3 * 86400)
        _age(root / "gone", 3 * 86400)  # unlocked and untouched for 3 days
        _age(root / "restarting", 600)  # unlocked for 10 minutes: kept (grace of a day)
        assert recovery.gone_workers(s, time.time()) == [root / "gone"]
        result = recovery.clean_disk(s, lambda: registry)
    finally:
        holder.kill()
        holder.wait()
    assert result.startswith("removed ")
    assert sorted(p.name for p in root.iterdir()) == ["live", "restarting"]
    assert recovery.gone_workers(s, time.time() + 2 * 86400) == [root / "live", root / "restarting"]  # holder gone now
