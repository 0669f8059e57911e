"""The local model cache against the real embedded SeaweedFS, including an unreachable S3."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.aliases import CHAMPION
from models.cache import SOURCE_BACKUP, SOURCE_CACHE, SOURCE_S3, ModelCache
from models.registry import ModelRegistry
from models.store import ObjectStore, make_s3_client
from rlsizer.stack.processes import free_port
from tests.unit.models.strategies import example_draft

pytestmark = pytest.mark.integration
KEY = b"integration-test-signing-key-0001"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def registry(settings):
    store = ObjectStore(make_s3_client(settings), settings.s3_bucket)
    store.ensure_bucket()
    return ModelRegistry(store, KEY, model_name=f"c-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def offline(settings, registry):
    """The same model on an S3 endpoint where nothing listens."""
    down = replace(settings, s3_endpoint=f"http://127.0.0.1:{free_port()}")
    store = ObjectStore(make_s3_client(down, connect_timeout=0.5, attempts=1), settings.s3_bucket)
    return ModelRegistry(store, KEY, model_name=registry.model_name)


def publish(registry, n, *, alias=None):
    return registry.publish(
        f"onnx-{n}".encode() * 64, example_draft(run_name=f"run{n}"), created_at=T0 + timedelta(minutes=n), alias=alias
    ).manifest.version


def test_champion_is_fetched_once_then_served_from_the_cache(tmp_path, registry):
    version = publish(registry, 1, alias=CHAMPION)
    cache = ModelCache(tmp_path, registry)
    first = cache.load()
    assert (first.model.source, first.model.version, first.degraded) == (SOURCE_S3, version, False)
    assert first.model.artifact == b"onnx-1" * 64
    second = cache.load()
    assert (second.model.source, second.model.artifact) == (SOURCE_CACHE, first.model.artifact)
    assert (tmp_path / "versions" / version / "model.onnx").read_bytes() == first.model.artifact
    assert (tmp_path / "backup" / version / "model.onnx").read_bytes() == first.model.artifact
    assert cache.cached_champion() == version


def test_a_new_champion_is_picked_up(tmp_path, registry):
    publish(registry, 1, alias=CHAMPION)
    cache = ModelCache(tmp_path, registry)
    cache.load()
    v2 = publish(registry, 2, alias=CHAMPION)
    loaded = cache.load()
    assert (loaded.model.version, loaded.model.source) == (v2, SOURCE_S3)


def test_corrupt_cache_file_is_restored_from_backup(tmp_path, registry):
    version = publish(registry, 1, alias=CHAMPION)
    cache = ModelCache(tmp_path, registry)
    cache.load()
    working = tmp_path / "versions" / version / "model.onnx"
    working.write_bytes(b"bit rot")
    loaded = cache.load()
    assert loaded.model.source == SOURCE_BACKUP
    assert "tampered_artifact" in loaded.reason and "restored from backup" in loaded.reason
    assert working.read_bytes() == b"onnx-1" * 64
    assert cache.load().model.source == SOURCE_CACHE


def test_corrupt_cache_and_backup_are_refetched_from_s3(tmp_path, registry):
    version = publish(registry, 1, alias=CHAMPION)
    cache = ModelCache(tmp_path, registry)
    cache.load()
    (tmp_path / "versions" / version / "manifest.json").write_bytes(b"{}")
    (tmp_path / "backup" / version / "model.onnx").write_bytes(b"bit rot")
    loaded = cache.load()
    assert loaded.model.source == SOURCE_S3
    assert "cached" in loaded.reason and "backup corrupt" in loaded.reason and "fetched from S3" in loaded.reason
    assert cache.load().model.source == SOURCE_CACHE


def test_s3_down_keeps_serving_the_verified_champion_and_says_so(tmp_path, registry, offline):
    version = publish(registry, 1, alias=CHAMPION)
    ModelCache(tmp_path, registry).load()
    loaded = ModelCache(tmp_path, offline).load()
    assert loaded.model is not None
    assert (loaded.model.version, loaded.model.source, loaded.degraded) == (version, SOURCE_CACHE, True)
    assert "registry unavailable" in loaded.reason and "unreachable" in loaded.reason
    assert f"serving cached champion {version}" in loaded.reason


def test_s3_down_with_corrupt_cache_uses_backup_and_with_nothing_usable_returns_none(tmp_path, registry, offline):
    version = publish(registry, 1, alias=CHAMPION)
    ModelCache(tmp_path, registry).load()
    (tmp_path / "versions" / version / "model.onnx").write_bytes(b"bit rot")
    assert ModelCache(tmp_path, offline).load().model.source == SOURCE_BACKUP
    for area in ("versions", "backup"):
        (tmp_path / area / version / "model.onnx").write_bytes(b"bit rot")
    loaded = ModelCache(tmp_path, offline).load()
    assert loaded.model is None and loaded.degraded
    assert "cached champion unusable too" in loaded.reason and "use the rule policy" in loaded.reason


def test_s3_down_with_empty_cache_returns_none_with_reason(tmp_path, offline):
    loaded = ModelCache(tmp_path, offline).load()
    assert loaded.model is None
    assert "registry unavailable" in loaded.reason and "no verified champion cached" in loaded.reason


def test_tampered_new_champion_is_not_served_the_last_good_one_is(tmp_path, registry):
    v1 = publish(registry, 1, alias=CHAMPION)
    cache = ModelCache(tmp_path, registry)
    cache.load()
    v2 = publish(registry, 2, alias=CHAMPION)
    registry.store.client.put_object(
        Bucket=registry.store.bucket, Key=f"models/{registry.model_name}/versions/{v2}/model.onnx", Body=b"evil"
    )
    loaded = cache.load()
    assert (loaded.model.version, loaded.degraded) == (v1, True)
    assert f"champion {v2} unusable" in loaded.reason and "tampered_artifact" in loaded.reason
    assert not (tmp_path / "versions" / v2).exists()


def test_a_champion_alias_signed_with_another_key_is_refused_not_taken_for_an_outage(tmp_path, registry, offline):
    v1 = publish(registry, 1, alias=CHAMPION)
    cache = ModelCache(tmp_path, registry)
    cache.load()
    other = ModelRegistry(registry.store, b"another-signing-key-000000000001", model_name=registry.model_name)
    v2 = publish(other, 2, alias=CHAMPION)  # its own version, and the alias, signed with the other key
    assert v2 != v1
    loaded = cache.load()
    assert (
        loaded.alias_refused and loaded.degraded and (loaded.model.version, loaded.model.source) == (v1, SOURCE_CACHE)
    )
    assert "champion alias refused" in loaded.reason and "wrong_key" in loaded.reason
    assert not ModelCache(tmp_path, offline).load().alias_refused  # S3 down is an outage, not a refused alias


def test_cleanup_keeps_the_newest_n_and_the_champion(tmp_path, registry):
    versions = [publish(registry, n, alias=CHAMPION if n == 0 else None) for n in range(5)]
    cache = ModelCache(tmp_path, registry)
    assert cache.load().model.version == versions[0]
    for version in versions[1:]:
        assert cache.load(version).model.source == SOURCE_S3
    removed = cache.cleanup(keep=2)
    assert removed == versions[1:3]
    assert cache.cached_versions() == [versions[0], *versions[3:]]
    assert not (tmp_path / "backup" / versions[1]).exists()
    assert cache.load().model.source == SOURCE_CACHE
    with pytest.raises(ValueError, match="keep must be >= 1"):
        cache.cleanup(keep=0)
