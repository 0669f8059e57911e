"""The worker's verified loader, champion poller and model watcher, with registry and cache doubles.

The real cache and registry are tested on S3 (tests/integration/test_models_*.py), and the
whole path with a worker in tests/integration/test_health_tamper.py.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace

import pytest

from agents.features import FEATURE_NAMES, FEATURE_SET
from agents.glue.models import ModelUnchanged, ModelWatcher
from agents.glue.verified_models import (
    FORGED,
    MATCHES,
    NOT_CHAMPION,
    OLD,
    ChampionPoller,
    ModelRefused,
    VerifiedLoader,
    judge_announcement,
)
from agents.sizing import PolicySlot
from config.settings import Settings
from models.aliases import AliasRecord
from models.errors import TAMPERED_ALIAS, WRONG_KEY, ModelVerificationError, RegistryUnavailable
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import ModelPublished
from tests.unit.agents.tiny_onnx import sizing_model
from tests.unit.schemas.factories import T0


def verified(version: str, feature_set: str = FEATURE_SET):
    manifest = SimpleNamespace(version=version, feature_set=feature_set, feature_names=list(FEATURE_NAMES))
    return SimpleNamespace(artifact=sizing_model(len(FEATURE_NAMES)), manifest=manifest, version=version)


@dataclass
class FakeRegistry:
    """``alias(CHAMPION)``: the signed record, or the error the real registry raises."""

    record: AliasRecord | None = None
    error: Exception | None = None

    def alias(self, name):
        if self.error is not None:
            raise self.error
        return self.record

    def point(self, version: str, at) -> None:
        history = () if self.record is None else (*self.record.history, self.record.version)
        self.record = AliasRecord(alias="champion", version=version, history=history, updated_at=at)


@dataclass
class FakeCache:
    models: dict = field(default_factory=dict)
    champion: str | None = None
    degraded: bool = False
    alias_refused: bool = False
    marked: list = field(default_factory=list)
    loaded: list = field(default_factory=list)
    registry: FakeRegistry = field(default_factory=FakeRegistry)

    def mark_champion(self, version):
        self.marked.append(version)

    def load(self, version=None):
        self.loaded.append(version)
        version = version or self.champion
        model = self.models.get(version)
        reason = "from local cache" if model else f"{version}: tampered_artifact: sha256 mismatch"
        if self.alias_refused:
            reason = "champion alias refused (wrong_key: champion alias was signed with key id abc, ours is def)"
        return SimpleNamespace(
            model=model, reason=reason, degraded=self.degraded or model is None, alias_refused=self.alias_refused
        )


def published(version: str, *, at=T0 + timedelta(minutes=1), alias: str | None = "champion") -> ModelPublished:
    return ModelPublished(
        ts_event=at,
        model_name="cvar-ppo",
        version=version,
        artifact_uri="s3://b/k",
        manifest_uri="s3://b/m",
        sha256="0" * 64,
        signature="ab",
        feature_set=FEATURE_SET,
        alias=alias,
    )


def cache_naming(version: str | None, *versions: str, at=T0) -> FakeCache:
    cache = FakeCache(models={v: verified(v) for v in versions})
    if version is not None:
        cache.registry.point(version, at)
    return cache


# --- judge_announcement (pure) --------------------------------------------------------------


def test_an_announcement_is_judged_against_the_signed_alias():
    alias = AliasRecord(alias="champion", version="v2", history=("v1",), updated_at=T0)
    assert judge_announcement(published("v2"), alias).kind == MATCHES
    assert judge_announcement(published("v2", alias=None), alias).kind == MATCHES
    assert judge_announcement(published("v1", at=T0 - timedelta(seconds=1)), alias).kind == OLD
    assert judge_announcement(published("v3", alias=None), alias).kind == NOT_CHAMPION
    forged = judge_announcement(published("v3", at=T0), alias)
    assert forged.kind == FORGED and "forged" in forged.detail and "v3" in forged.detail and "names v2" in forged.detail
    assert judge_announcement(published("v1"), None).kind == FORGED  # no champion at all: nobody promoted v1


# --- the loader ----------------------------------------------------------------------------


def test_loader_builds_policy_from_verified_bytes_and_reports_ok():
    reports = []
    cache = cache_naming("v1", "v1")
    policy = VerifiedLoader(cache, reports.append)(published("v1"))
    assert policy.version == "v1" and cache.marked == ["v1"]
    assert [(r.check, r.status) for r in reports] == [("model_integrity", "OK")]
    assert "signed champion alias" in reports[0].detail


def test_loader_refuses_unverified_model_and_reports_fail():
    reports = []
    loader = VerifiedLoader(cache_naming("v2"), reports.append)
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        loader(published("v2"))
    assert reports[0].status == "FAIL" and "current policy stays in service" in reports[0].detail


def test_loader_refuses_other_feature_set():
    cache = cache_naming("v1")
    cache.models["v1"] = verified("v1", feature_set="fs0")
    with pytest.raises(ModelRefused, match="feature set 'fs0'"):
        VerifiedLoader(cache)(published("v1"))


def test_a_forged_announcement_changes_nothing_and_is_a_fail_naming_it():
    """A refused challenger, validly signed itself, announced as champion by someone without the key."""
    reports = []
    cache = cache_naming("v1", "v1", "challenger")
    with pytest.raises(ModelRefused, match="forged"):
        VerifiedLoader(cache, reports.append)(published("challenger"))
    assert cache.loaded == [] and cache.marked == []
    assert [(r.status, r.action) for r in reports] == [("FAIL", "kept current policy")]
    assert "forged announcement" in reports[0].detail and "challenger" in reports[0].detail


def test_an_old_announcement_read_again_at_start_changes_nothing_quietly():
    reports = []
    cache = cache_naming("v2", "v1", "v2", at=T0 + timedelta(hours=1))  # v2 promoted after v1 was announced
    with pytest.raises(ModelUnchanged, match="old announcement of v1"):
        VerifiedLoader(cache, reports.append)(published("v1"))
    assert cache.loaded == [] and reports == []


def test_a_new_version_without_an_alias_is_not_served():
    cache = cache_naming("v1", "v1", "v2")
    with pytest.raises(ModelUnchanged):
        VerifiedLoader(cache)(published("v2", alias=None))
    assert cache.loaded == []


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (WRONG_KEY, "cvar-ppo champion alias was signed with key id 1111, ours is 2222"),
        (TAMPERED_ALIAS, "cvar-ppo champion alias bytes do not match their HMAC-SHA256 signature"),
    ],
)
def test_an_alias_that_fails_its_signature_changes_nothing_and_is_a_fail_naming_the_cause(kind, reason):
    reports = []
    cache = cache_naming(None, "v1", "v2")
    cache.registry.error = ModelVerificationError(kind, reason)
    with pytest.raises(ModelRefused, match=kind):
        VerifiedLoader(cache, reports.append)(published("v2"))
    assert cache.loaded == []
    assert reports[0].status == "FAIL" and kind in reports[0].detail and reason in reports[0].detail


def test_an_unreadable_alias_is_a_warning_and_loads_nothing():
    reports = []
    cache = cache_naming(None, "v1")
    cache.registry.error = RegistryUnavailable("S3 at http://127.0.0.1:1 unreachable")
    with pytest.raises(ModelRefused, match="cannot read the champion alias"):
        VerifiedLoader(cache, reports.append)(published("v1"))
    assert cache.loaded == [] and reports[0].status == "WARN"


def test_an_announcement_of_what_is_served_is_acknowledged_not_reloaded():
    reports = []
    slot = PolicySlot()
    cache = cache_naming("v1", "v1")
    loader = VerifiedLoader(cache, reports.append, slot=slot)
    slot.swap(loader(published("v1")))
    with pytest.raises(ModelUnchanged, match="already served"):
        loader(published("v1"))
    assert cache.loaded == ["v1"] and [r.status for r in reports] == ["OK", "OK"]


def test_promote_and_rollback_are_followed():
    """promote v2, roll back to v1, and start again reading every announcement from the beginning."""
    clock = [T0]

    def tick():
        clock[0] += timedelta(minutes=1)
        return clock[0]

    slot, cache = PolicySlot(), cache_naming(None, "v1", "v2")
    loader = VerifiedLoader(cache, slot=slot)
    log = []
    for version in ("v1", "v2"):  # publish as champion, then promote: the alias moves, then the event is sent
        cache.registry.point(version, tick())
        log.append(published(version, at=tick()))
        slot.swap(loader(log[-1]))
    assert slot.current.version == "v2"
    cache.registry.record = AliasRecord(alias="champion", version="v1", history=(), updated_at=tick())  # rollback
    log.append(published("v1", at=tick()))
    slot.swap(loader(log[-1]))
    assert slot.current.version == "v1"

    restarted, served = PolicySlot(), []
    again = VerifiedLoader(cache, slot=restarted)
    for event in log:  # the models topic read from the beginning
        with contextlib.suppress(ModelUnchanged):
            restarted.swap(again(event))
        served.append(getattr(restarted.current, "version", None))
    assert served == ["v1", "v1", "v1"]


# --- the poller ----------------------------------------------------------------------------


def test_poller_swaps_to_new_champion_and_keeps_current_when_nothing_verifies():
    cache = FakeCache(models={"v1": verified("v1")}, champion="v1")
    slot = PolicySlot()
    poller = ChampionPoller(Settings(), cache, slot)
    assert "serving champion v1" in poller.poll_once()
    assert slot.current.version == "v1"
    assert "already served" in poller.poll_once()
    cache.champion = "v2"  # names a version that does not verify
    assert "keeping v1" in poller.poll_once()
    assert slot.current.version == "v1"


def test_poller_without_any_model_says_rules_serve():
    assert "rule policy serves" in ChampionPoller(Settings(), FakeCache(champion=None), PolicySlot()).poll_once()


def test_poller_with_a_refused_alias_changes_nothing_and_fails():
    reports = []
    cache = FakeCache(models={"v1": verified("v1"), "v2": verified("v2")}, champion="v1")
    slot = PolicySlot()
    poller = ChampionPoller(Settings(), cache, slot, reports.append)
    poller.poll_once()
    cache.champion, cache.alias_refused = (
        "v2",
        True,
    )  # the cache serves its verified champion v1, says the alias is refused
    cache.models.pop("v2")
    assert "serving v1" in poller.poll_once()
    assert slot.current.version == "v1"
    assert reports[-1].status == "FAIL" and "wrong_key" in reports[-1].detail


def test_poller_at_start_with_a_refused_alias_serves_the_champion_verified_before():
    reports = []
    cache = FakeCache(models={"v1": verified("v1")}, champion="v1", alias_refused=True)
    slot = PolicySlot()
    ChampionPoller(Settings(), cache, slot, reports.append).poll_once()
    assert slot.current.version == "v1" and reports[-1].status == "FAIL"


# --- the watcher ---------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent = []

    def send(self, event) -> None:
        self.sent.append(event)

    def flush(self, timeout) -> None:
        pass


def _watcher(load):
    codec = EventCodec(InMemoryRegistry())
    slot, dlq = PolicySlot(), Recorder()
    watcher = ModelWatcher(Settings(), codec, consumer=None, dlq=dlq, slot=slot, load_model=load)
    return watcher, codec, slot, dlq


@pytest.mark.parametrize(
    ("raised", "dead_letters"), [(ModelUnchanged("old announcement"), 0), (ModelRefused("forged"), 1)]
)
def test_the_watcher_dead_letters_refused_announcements_only(raised, dead_letters):
    def load(event):
        raise raised

    watcher, codec, slot, dlq = _watcher(load)
    value = codec.encode("rlsizer.models", published("v9"))
    watcher.handle("rlsizer.models", 0, 7, b"cvar-ppo", value)
    assert slot.current is None and watcher.swapped == []
    assert len(dlq.sent) == dead_letters
    if dead_letters:
        assert dlq.sent[0].error_type == "model_rejected" and "forged" in dlq.sent[0].reason
