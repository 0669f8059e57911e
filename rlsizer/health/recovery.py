"""What the health monitor does about what it finds: the recovery actions, and the model-integrity probe.

- ``restore_model``: every worker's local model cache is checked; a corrupt copy of
  the champion is restored from the cache's backup or re-fetched from S3 (verified).
- ``refresh_model``: re-announce the registry's champion on the models topic, so a
  worker that missed the event (or serves a stale model) reloads it.
- ``clean_disk``: old cached model versions, old reports, set-aside warehouses and the data
  dirs of workers that are gone (unlocked and untouched for a day: ``gone_workers``) go.
- ``retry_training``: the trainer service retries with exponential backoff by
  itself; the monitor reports when the next attempt is due.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from agents import health
from agents.health import CheckResult
from config.settings import Settings
from models.errors import ModelRegistryError, ModelVerificationError
from streams.dir_lock import in_use
from trainer.status import load_status

KEEP_REPORTS = 20
GONE_WORKER_GRACE_S = 24 * 3600.0  # a worker dir unlocked and untouched this long belongs to a worker that is gone
log = logging.getLogger(__name__)


def _worker_dirs(settings: Settings) -> list[Path]:
    """Each worker's data dir (``agents.glue.faust.transport.worker_datadir``), in name order."""
    return sorted(p for p in (Path(settings.data_dir) / "worker").glob("*") if p.is_dir())


def worker_caches(settings: Settings, registry: Any) -> list[Any]:
    from models.cache import ModelCache  # lazy: loads boto3, confluent-kafka, pyarrow only when used

    return [ModelCache(d / "models", registry) for d in _worker_dirs(settings) if (d / "models").is_dir()]


def _verify_cached(cache: Any, version: str) -> str | None:
    """None when the cached copy of ``version`` verifies, else what is wrong with it."""
    from models.store import (  # lazy: loads boto3, confluent-kafka, pyarrow only when used
        ARTIFACT_FILE,
        MANIFEST_FILE,
        SIGNATURE_FILE,
    )

    folder = cache.directory / "versions" / version
    parts = [
        (folder / name).read_bytes() if (folder / name).exists() else None
        for name in (ARTIFACT_FILE, MANIFEST_FILE, SIGNATURE_FILE)
    ]
    try:
        cache.registry.verify_local(*parts, version)
    except ModelVerificationError as exc:
        return str(exc)
    return None


def registry_champion_problem(registry: Any) -> tuple[str | None, str | None]:
    """``(champion version, problem)``: the registry's champion checked in S3 as a worker would check it.

    The alias's signature, then the manifest's signature and the artifact's size and sha256
    (``ModelRegistry.fetch_signed``). ``problem`` is ``None`` when all hold (or there is no champion).
    """

    try:
        version = registry.champion()
    except ModelVerificationError as exc:
        return None, f"registry champion alias refused ({exc.kind}): {exc.reason}"
    except ModelRegistryError as exc:
        return None, f"cannot read the registry champion alias: {exc}"
    if version is None:
        return None, None
    try:
        registry.fetch_signed(version)
    except ModelVerificationError as exc:
        return version, (
            f"registry champion {version} fails verification ({exc.kind}): {exc.reason}; no worker will "
            f"load it. Promote a version that verifies (rlsizer models list, rlsizer models promote "
            f"VERSION) or roll back (rlsizer models rollback)"
        )
    except ModelRegistryError as exc:
        return version, f"cannot read registry champion {version}: {exc}"
    return version, None


def model_integrity_probe(settings: Settings, registry_factory: Callable[[], Any]) -> Callable[[datetime], CheckResult]:
    """The registry's champion in S3 (``registry_champion_problem``), then every worker's cached champion."""

    def probe(now: datetime) -> CheckResult:
        registry = registry_factory()
        champion, registry_problem = registry_champion_problem(registry)
        problems = []
        checked = 0
        for cache in worker_caches(settings, registry):
            version = cache.cached_champion()
            if version is None:
                continue
            checked += 1
            problem = _verify_cached(cache, version)
            if problem:
                problems.append(f"{cache.directory}: {version}: {problem}")
        if registry_problem:
            return health.model_integrity(False, "; ".join([registry_problem, *problems]), restorable=bool(problems))
        if problems:
            return health.model_integrity(False, "; ".join(problems))
        in_s3 = (
            f"registry champion {champion} verified (alias signature, manifest signature, sha256)"
            if champion
            else "no champion in the registry"
        )
        cached = f"{checked} cached champion(s) verified" if checked else "no cached model yet"
        return health.model_integrity(True, f"{in_s3}; {cached}")

    return probe


def restore_models(settings: Settings, registry_factory: Callable[[], Any]) -> str:
    done = []
    for cache in worker_caches(settings, registry_factory()):
        version = cache.cached_champion()
        if version is not None and _verify_cached(cache, version):
            loaded = cache.load(version)
            done.append(f"{version}: {loaded.reason}" if loaded.model else f"{version}: NOT restored ({loaded.reason})")
    return "; ".join(done) or "nothing to restore"


def refresh_champion(settings: Settings, registry_factory: Callable[[], Any], send: Callable[[Any], None]) -> str:
    registry = registry_factory()
    version = registry.champion()
    if version is None:
        return "no champion in the registry; the rule policy serves"
    send(registry.alias_event("champion", version))
    return f"re-announced champion {version}"


def gone_workers(settings: Settings, now: float, *, grace_s: float = GONE_WORKER_GRACE_S) -> list[Path]:
    """Data dirs of workers that are gone: no live process holds the dir's lock (``agents.worker``),
    and nothing in it changed for ``grace_s`` (a worker restarting keeps its dir)."""
    return [
        d
        for d in _worker_dirs(settings)
        if not in_use(d) and now - max(p.stat().st_mtime for p in (d, *d.rglob("*"))) > grace_s
    ]


def clean_disk(settings: Settings, registry_factory: Callable[[], Any]) -> str:
    removed = 0
    for d in gone_workers(settings, time.time()):
        shutil.rmtree(d, ignore_errors=True)  # derived state: a model cache and Faust data, refilled if it comes back
        log.info("removed the data dir of a worker that is gone: %s", d)
        removed += 1
    for cache in worker_caches(settings, registry_factory()):
        removed += len(cache.cleanup(keep=2))
    reports = sorted((Path(settings.data_dir) / "reports").glob("*.html"), key=lambda p: p.stat().st_mtime)
    for old in reports[:-KEEP_REPORTS]:
        old.unlink(missing_ok=True)
        removed += 1
    for bad in Path(settings.data_dir).glob("*.bad-*"):
        bad.unlink(missing_ok=True)
        removed += 1
    return f"removed {removed} old file(s)"


def training_retry_note(settings: Settings) -> str:
    status = load_status(settings.data_dir)
    delay = health.backoff_delay(
        status.consecutive_failures,
        base_seconds=min(60.0, settings.train_interval_seconds),
        cap_seconds=settings.train_interval_seconds,
    )
    if status.last_attempt is None:
        return "the trainer service has not attempted a round yet"
    return f"trainer service retries by itself; next attempt due {delay:.0f} s after {status.last_attempt.isoformat()}"
