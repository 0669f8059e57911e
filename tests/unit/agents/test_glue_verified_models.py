"""The worker's verified loader and champion poller, with a cache double (the real cache is tested on S3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from agents.features import FEATURE_NAMES, FEATURE_SET
from agents.glue.verified_models import ChampionPoller, ModelRefused, VerifiedLoader
from agents.sizing import PolicySlot
from schemas.events import ModelPublished
from streams.settings import Settings
from tests.unit.agents.tiny_onnx import sizing_model
from tests.unit.schemas.factories import T0


def verified(version: str, feature_set: str = FEATURE_SET):
    manifest = SimpleNamespace(version=version, feature_set=feature_set, feature_names=list(FEATURE_NAMES))
    return SimpleNamespace(artifact=sizing_model(len(FEATURE_NAMES)), manifest=manifest, version=version)


@dataclass
class FakeCache:
    models: dict = field(default_factory=dict)
    champion: str | None = None
    degraded: bool = False
    marked: list = field(default_factory=list)

    def mark_champion(self, version):
        self.marked.append(version)

    def load(self, version=None):
        version = version or self.champion
        model = self.models.get(version)
        reason = "from local cache" if model else f"{version}: tampered_artifact: sha256 mismatch"
        return SimpleNamespace(model=model, reason=reason, degraded=self.degraded or model is None)


def published(version: str) -> ModelPublished:
    return ModelPublished(ts_event=T0, model_name="cvar-ppo", version=version, artifact_uri="s3://b/k", manifest_uri="s3://b/m",
                          sha256="0" * 64, signature="ab", feature_set=FEATURE_SET, alias="champion")


def test_loader_builds_policy_from_verified_bytes_and_reports_ok():
    reports = []
    loader = VerifiedLoader(FakeCache(models={"v1": verified("v1")}), reports.append)
    cache = FakeCache(models={"v1": verified("v1")})
    loader = VerifiedLoader(cache, reports.append)
    policy = loader(published("v1"))
    assert policy.version == "v1" and cache.marked == ["v1"]
    assert [(r.check, r.status) for r in reports] == [("model_integrity", "OK")]


def test_loader_refuses_unverified_model_and_reports_fail():
    reports = []
    loader = VerifiedLoader(FakeCache(), reports.append)
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        loader(published("v2"))
    assert reports[0].status == "FAIL" and "current policy stays in service" in reports[0].detail


def test_loader_refuses_other_feature_set():
    loader = VerifiedLoader(FakeCache(models={"v1": verified("v1", feature_set="fs0")}))
    with pytest.raises(ModelRefused, match="feature set 'fs0'"):
        loader(published("v1"))


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
