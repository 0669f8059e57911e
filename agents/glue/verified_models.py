"""Serving only verified models: the worker's model loader on top of ``models/``.

A ``ModelPublished`` names a version; the loader gets it through the local
``ModelCache`` (signature and sha256 checked before any byte reaches
onnxruntime; a corrupt local copy is restored from the backup or S3) and builds
the ``OnnxPolicy`` with the manifest's feature names. A model that fails
verification is refused: the loader raises, the ``ModelWatcher`` keeps the
current policy in the slot, and a ``HealthChecked`` FAIL is reported.

``ChampionPoller`` is the fallback when events are missed: every
``settings.model_poll_seconds`` (and once at start) it asks the cache for the
registry's champion and swaps when the version changed. With S3 unreachable at
start, the cache serves its last verified champion, or nothing (rules serve),
and the poller says which.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas.events import HealthChecked, ModelPublished, utc_now
from streams.settings import Settings

log = logging.getLogger(__name__)

Report = Callable[[HealthChecked], None]


class ModelRefused(RuntimeError):
    """A published model failed verification or does not fit the serving features."""


def model_cache_dir(settings: Settings, worker_id: str) -> Path:
    return Path(settings.data_dir) / "worker" / worker_id / "models"


def _health(status: str, detail: str, action: str | None = None) -> HealthChecked:
    return HealthChecked(ts_event=utc_now(), component="worker", check="model_integrity", status=status,
                         detail=detail, action=action)


def build_policy(verified: Any) -> Any:
    from agents.features import FEATURE_SET
    from agents.sizing import OnnxPolicy

    manifest = verified.manifest
    if manifest.feature_set != FEATURE_SET:
        raise ModelRefused(f"model {manifest.version} was trained on feature set {manifest.feature_set!r}; serving {FEATURE_SET!r}")
    return OnnxPolicy(verified.artifact, feature_names=list(manifest.feature_names), version=manifest.version)


class VerifiedLoader:
    """``load_model(event) -> OnnxPolicy`` for ``ModelWatcher``; refuses anything unverified."""

    def __init__(self, cache: Any, report: Report | None = None) -> None:
        self.cache = cache
        self.report = report or (lambda event: None)

    def __call__(self, event: ModelPublished) -> Any:
        loaded = self.cache.load(event.version)
        if loaded.model is None:
            detail = f"model {event.version} refused: {loaded.reason}; the current policy stays in service"
            self.report(_health("FAIL", detail, "kept current policy"))
            raise ModelRefused(detail)
        policy = build_policy(loaded.model)
        if event.alias == "champion":
            self.cache.mark_champion(event.version)
        self.report(_health("OK", f"model {event.version} verified ({loaded.reason}) and loaded"))
        return policy


class ChampionPoller:
    def __init__(self, settings: Settings, cache: Any, slot: Any, report: Report | None = None) -> None:
        self.cache = cache
        self.slot = slot
        self.report = report or (lambda event: None)
        self.interval = settings.model_poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def poll_once(self) -> str:
        loaded = self.cache.load()
        current = getattr(self.slot.current, "version", None)
        if loaded.model is None:
            what = f"no verified champion ({loaded.reason}); {'keeping ' + current if current else 'rule policy serves'}"
            self.report(_health("WARN", what))
            return what
        if loaded.model.version == current:
            return f"champion {current} already served"
        try:
            self.slot.swap(build_policy(loaded.model))
        except Exception as exc:
            what = f"champion {loaded.model.version} not loaded: {exc}"
            self.report(_health("FAIL", what, "kept current policy"))
            return what
        what = f"serving champion {loaded.model.version} ({loaded.reason})"
        self.report(_health("WARN" if loaded.degraded else "OK", what))
        log.info(what)
        return what

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("champion poll failed; retrying at the next interval")
            self._stop.wait(self.interval)
