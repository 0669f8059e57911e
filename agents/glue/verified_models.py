"""Serving only what the signed champion alias names: the worker's model loader on top of ``models/``.

A ``ModelPublished`` is a hint, never an authority: anyone who can write to the
models topic can send one. On each announcement the loader re-reads the champion
alias from the registry and checks its signature (``ModelRegistry.alias``); only
the version that alias names is ever loaded, through the local ``ModelCache``
(manifest signature and sha256 checked before any byte reaches onnxruntime; a
corrupt local copy is restored from the backup or S3), and the ``OnnxPolicy`` is
built with the manifest's feature names. What an announcement can be
(``judge_announcement``):

- it names what the signed alias names: loaded, unless already served;
- it names another version and is older than the alias's last change (an old
  announcement read again at start-up, after a later promote or rollback):
  nothing changes, quietly;
- it names another version as champion and is not older than the alias's last
  change: forged (no ``promote``/``rollback`` sent it). Nothing changes and a
  ``HealthChecked`` FAIL names it. A forger who backdates the announcement before
  the alias's last change is taken for an old one: nothing changes either way.

A champion alias that fails its signature (re-pointed without the key, signed with
another key, unsigned) changes nothing and is a FAIL naming the cause, from the
loader and from the poller alike.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agents.glue.models import ModelUnchanged
from config.settings import Settings
from models.aliases import CHAMPION, AliasRecord
from models.errors import ModelRegistryError, ModelVerificationError
from models.manifest import format_ts
from schemas.events import HealthChecked, ModelPublished, utc_now

if TYPE_CHECKING:  # types only: the loader is given its cache and slot
    from agents.sizing import PolicySlot
    from models.cache import ModelCache

log = logging.getLogger(__name__)

Report = Callable[[HealthChecked], None]

MATCHES: Final = "matches"
OLD: Final = "old"
NOT_CHAMPION: Final = "not_champion"
FORGED: Final = "forged"


class ModelRefused(RuntimeError):
    """A published model failed verification, does not fit the serving features, or was not the signed champion."""


def model_cache_dir(settings: Settings, worker_id: str) -> Path:
    return Path(settings.data_dir) / "worker" / worker_id / "models"


def _health(status: str, detail: str, action: str | None = None) -> HealthChecked:
    return HealthChecked(
        ts_event=utc_now(), component="worker", check="model_integrity", status=status, detail=detail, action=action
    )


def build_policy(verified: Any) -> Any:
    from agents.features import FEATURE_SET  # lazy: loads ta-lib only when used
    from agents.sizing import load_policy  # lazy: loads onnxruntime, onnx only when used

    manifest = verified.manifest
    if manifest.feature_set != FEATURE_SET:
        raise ModelRefused(
            f"model {manifest.version} was trained on feature set {manifest.feature_set!r}; serving {FEATURE_SET!r}"
        )
    return load_policy(verified.artifact, feature_names=list(manifest.feature_names), version=manifest.version)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What an announcement is, measured against the signed champion alias (``judge_announcement``)."""

    kind: str  # MATCHES, OLD, NOT_CHAMPION or FORGED
    detail: str


def judge_announcement(event: ModelPublished, champion: AliasRecord | None) -> Verdict:
    """Pure: ``event`` against the verified champion alias record (``None``: the registry has no champion)."""
    named = f"{event.version} as {event.alias or 'a new version'}"
    if champion is not None and event.version == champion.version:
        return Verdict(kind=MATCHES, detail=f"{event.version} is what the signed champion alias names")
    where = (
        "the registry has no champion alias"
        if champion is None
        else f"the signed champion alias names {champion.version} (since {format_ts(champion.updated_at)})"
    )
    if event.alias != CHAMPION:
        return Verdict(kind=NOT_CHAMPION, detail=f"announcement of {named}: {where}")
    if champion is not None and event.ts_event < champion.updated_at:
        return Verdict(kind=OLD, detail=f"old announcement of {named} (sent {format_ts(event.ts_event)}): {where}")
    return Verdict(
        kind=FORGED,
        detail=(
            f"forged announcement of {event.version} as champion (ModelPublished {event.event_id}, sent "
            f"{format_ts(event.ts_event)}): {where}, and no promote or rollback sent it. Nothing changed; find who can "
            f"write to the models topic"
        ),
    )


class VerifiedLoader:
    """``load_model(event) -> OnnxPolicy`` for ``ModelWatcher``: loads only what the signed champion alias names.

    ``slot`` (the worker's policy slot) lets it tell "already served" from "to load";
    without it every matching announcement is loaded.
    """

    def __init__(self, cache: ModelCache, report: Report | None = None, *, slot: PolicySlot | None = None) -> None:
        self.cache = cache
        self.report = report or (lambda event: None)
        self.slot = slot

    def __call__(self, event: ModelPublished) -> Any:
        champion = self._signed_champion(event)
        verdict = judge_announcement(event, champion)
        if verdict.kind == FORGED:
            self.report(_health("FAIL", verdict.detail, "kept current policy"))
            raise ModelRefused(verdict.detail)
        if verdict.kind != MATCHES:
            raise ModelUnchanged(verdict.detail)
        served = getattr(getattr(self.slot, "current", None), "version", None)
        if served == event.version:
            self.report(_health("OK", f"model {event.version} already served; the signed champion alias names it"))
            raise ModelUnchanged(f"{event.version} already served")
        loaded = self.cache.load(event.version)
        if loaded.model is None:
            detail = f"model {event.version} refused: {loaded.reason}; the current policy stays in service"
            self.report(_health("FAIL", detail, "kept current policy"))
            raise ModelRefused(detail)
        policy = build_policy(loaded.model)
        self.cache.mark_champion(event.version)
        self.report(
            _health(
                "OK",
                f"model {event.version} verified ({loaded.reason}), named by the signed champion alias, and loaded",
            )
        )
        return policy

    def _signed_champion(self, event: ModelPublished) -> AliasRecord | None:
        """The champion alias record, its signature checked; refuses the announcement when it cannot be had."""
        try:
            return self.cache.registry.alias(CHAMPION)
        except ModelVerificationError as exc:
            detail = (
                f"champion alias refused ({exc.kind}): {exc.reason}. The announcement of {event.version} "
                f"changes nothing; the current policy stays in service"
            )
            self.report(_health("FAIL", detail, "kept current policy"))
            raise ModelRefused(detail) from None
        except ModelRegistryError as exc:  # S3 unreachable: the alias cannot be checked, so nothing is loaded
            detail = (
                f"cannot read the champion alias ({exc}); the announcement of {event.version} is not acted on, "
                f"the champion poller retries"
            )
            self.report(_health("WARN", detail))
            raise ModelRefused(detail) from None


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
        if loaded.alias_refused:  # nothing the alias says is taken; at start, the champion verified here before serves
            if current is None and loaded.model is not None:
                try:
                    self.slot.swap(build_policy(loaded.model))
                    current = loaded.model.version
                except Exception as exc:
                    log.warning("cached champion %s not loaded: %s", loaded.model.version, exc)
            what = f"{loaded.reason}; {'serving ' + current if current else 'rule policy serves'}"
            self.report(_health("FAIL", what, "kept current policy"))
            return what
        if loaded.model is None:
            what = (
                f"no verified champion ({loaded.reason}); {'keeping ' + current if current else 'rule policy serves'}"
            )
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
