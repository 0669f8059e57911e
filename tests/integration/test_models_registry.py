"""The model registry against the real embedded SeaweedFS (and broker + schema registry for events)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, TopicPartition

from models.aliases import CHALLENGER, CHAMPION, AliasRecord
from models.errors import (
    MISSING,
    TAMPERED_ALIAS,
    TAMPERED_ARTIFACT,
    TAMPERED_MANIFEST,
    WRONG_KEY,
    ModelVerificationError,
    NoPreviousChampion,
    VersionExists,
    VersionNotFound,
)
from models.events import EventNotSent, KafkaModelEvents
from models.registry import ModelRegistry
from models.signing import sha256_hex
from models.store import ObjectStore, alias_key, make_s3_client
from schemas.events import ModelPublished
from tests.unit.models.strategies import example_draft

pytestmark = pytest.mark.integration
KEY = b"integration-test-signing-key-0001"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(settings):
    store = ObjectStore(make_s3_client(settings), settings.s3_bucket)
    store.ensure_bucket()  # the stack creates it; idempotent either way
    return store


@pytest.fixture
def registry(store):
    return ModelRegistry(store, KEY, model_name=f"m-{uuid.uuid4().hex[:10]}")


def publish(registry, n, *, alias=None, artifact=None, **draft):
    return registry.publish(
        artifact if artifact is not None else f"onnx-{n}".encode() * 100,
        example_draft(run_name=f"run{n}", **draft),
        created_at=T0 + timedelta(minutes=n),
        alias=alias,
    )


def raw_put(registry, version, part, data):
    registry.store.client.put_object(
        Bucket=registry.store.bucket, Key=f"models/{registry.model_name}/versions/{version}/{part}", Body=data
    )


def test_publish_list_show_fetch_roundtrip(registry):
    sent: list[ModelPublished] = []
    artifact = b"\x08\x07onnx-graph" * 500
    first = registry.publish(
        artifact, example_draft(metrics={"sharpe": 1.5}), created_at=T0, alias=CHAMPION, on_published=sent.append
    )
    second = publish(registry, 1)

    assert first.manifest.version == "v20240301T120000Z-run7"
    assert registry.list_versions() == [first.manifest.version, second.manifest.version]
    data, manifest = registry.fetch_verified(first.manifest.version)
    assert data == artifact
    assert manifest == first.manifest
    assert (manifest.sha256, manifest.size, dict(manifest.metrics)) == (
        sha256_hex(artifact),
        len(artifact),
        {"sharpe": 1.5},
    )
    status = registry.show(first.manifest.version)
    assert (status.verified, status.problem, status.aliases) == (True, None, (CHAMPION,))
    assert registry.champion() == first.manifest.version

    key = f"models/{registry.model_name}/versions/{first.manifest.version}/model.onnx"
    assert first.artifact_uri == f"s3://{registry.store.bucket}/{key}"
    assert registry.store.get(key)[0] == artifact
    assert len(sent) == 1 and sent[0] == first.event
    assert (sent[0].version, sent[0].sha256, sent[0].alias) == (manifest.version, manifest.sha256, CHAMPION)
    assert sent[0].signature == first.signature.hmac_hex


def test_republishing_a_version_is_refused_and_leaves_it_intact(registry):
    original = publish(registry, 1)
    with pytest.raises(VersionExists, match="immutable"):
        publish(registry, 1, artifact=b"other bytes")
    data, manifest = registry.fetch_verified(original.manifest.version)
    assert data == b"onnx-1" * 100 and manifest == original.manifest


def test_conditional_writes_are_enforced_by_the_server(store):
    key = f"probe/{uuid.uuid4().hex}"
    client = store.client
    client.put_object(Bucket=store.bucket, Key=key, Body=b"1")
    # Bypass the head pre-check: the server itself must refuse.
    with pytest.raises(Exception, match="PreconditionFailed"):
        client.put_object(Bucket=store.bucket, Key=key, Body=b"2", IfNoneMatch="*")
    assert store.put(key, b"3", if_match='"0123456789abcdef0123456789abcdef"') is False
    assert store.get(key)[0] == b"1"


def test_tampered_artifact_is_refused(registry):
    version = publish(registry, 1).manifest.version
    raw_put(registry, version, "model.onnx", b"onnx-X" * 100)  # same size, other bytes
    with pytest.raises(ModelVerificationError) as caught:
        registry.fetch_verified(version)
    assert caught.value.kind == TAMPERED_ARTIFACT
    status = registry.show(version)
    assert status.verified is False and status.problem.startswith("tampered_artifact:")


def test_tampered_manifest_is_refused(registry):
    published = publish(registry, 1)
    version = published.manifest.version
    doc = published.manifest.to_dict()
    doc["metrics"]["sharpe"] = 9.99
    raw_put(registry, version, "manifest.json", json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(ModelVerificationError) as caught:
        registry.fetch_verified(version)
    assert caught.value.kind == TAMPERED_MANIFEST
    with pytest.raises(ModelVerificationError) as caught:
        registry.read_manifest(version)
    assert caught.value.kind == TAMPERED_MANIFEST


def test_wrong_key_is_refused(registry):
    version = publish(registry, 1).manifest.version
    other = ModelRegistry(registry.store, b"some-other-signing-key-0002", model_name=registry.model_name)
    with pytest.raises(ModelVerificationError) as caught:
        other.fetch_verified(version)
    assert caught.value.kind == WRONG_KEY


def test_missing_version_is_reported(registry):
    with pytest.raises(ModelVerificationError) as caught:
        registry.fetch_verified("v20990101T000000Z-nope")
    assert caught.value.kind == MISSING
    with pytest.raises(VersionNotFound):
        registry.show("v20990101T000000Z-nope")


def test_promote_and_rollback_walk_the_champion_history(registry):
    v1 = publish(registry, 1, alias=CHAMPION).manifest.version
    v2 = publish(registry, 2, alias=CHALLENGER).manifest.version
    assert (registry.champion(), registry.challenger()) == (v1, v2)

    assert registry.promote().version == v2
    assert (registry.champion(), registry.challenger()) == (v2, None)
    v3 = publish(registry, 3).manifest.version
    assert registry.promote(v3).history == (v1, v2)

    assert registry.rollback().version == v2
    assert registry.rollback().version == v1
    with pytest.raises(NoPreviousChampion, match=f"champion {v1} has no previous champion"):
        registry.rollback()
    assert registry.champion() == v1


def test_an_unverifiable_version_is_never_promoted(registry):
    v1 = publish(registry, 1, alias=CHAMPION).manifest.version
    v2 = publish(registry, 2).manifest.version
    raw_put(registry, v2, "model.onnx", b"evil")
    with pytest.raises(ModelVerificationError) as caught:
        registry.promote(v2)
    assert caught.value.kind == TAMPERED_ARTIFACT
    assert registry.champion() == v1


def test_rollback_refuses_a_previous_champion_that_no_longer_verifies(registry):
    v1 = publish(registry, 1, alias=CHAMPION).manifest.version
    v2 = publish(registry, 2, alias=CHAMPION).manifest.version
    raw_put(registry, v1, "model.onnx", b"evil")
    with pytest.raises(ModelVerificationError):
        registry.rollback()
    assert registry.champion() == v2
    assert registry.alias(CHAMPION).history == (v1,)
    assert registry.store.exists(alias_key(registry.model_name, CHAMPION))


def _alias_doc(registry, alias=CHAMPION):
    return json.loads(registry.store.get(alias_key(registry.model_name, alias))[0])


def _put_alias(registry, doc, alias=CHAMPION):
    registry.store.client.put_object(
        Bucket=registry.store.bucket, Key=alias_key(registry.model_name, alias), Body=json.dumps(doc).encode()
    )


def test_an_alias_pointed_elsewhere_without_the_key_is_refused(registry):
    """Someone with write access to the bucket but not the key points the champion at a refused challenger."""
    v1 = publish(registry, 1, alias=CHAMPION).manifest.version
    v2 = publish(registry, 2, alias=CHALLENGER).manifest.version  # signed, but the gate did not promote it
    doc = _alias_doc(registry)
    assert set(doc["signature"]) == {"algorithm", "key_id", "hmac"}
    _put_alias(registry, {**doc, "version": v2})
    with pytest.raises(ModelVerificationError) as caught:
        registry.champion()
    assert caught.value.kind == TAMPERED_ALIAS and "rlsizer models promote" in str(caught.value)
    assert registry.verified_alias(CHAMPION) is None and registry.show(v2).aliases == (CHALLENGER,)
    with pytest.raises(ModelVerificationError):
        registry.rollback()  # its history cannot be trusted either
    assert registry.promote(v1).history == ()  # the operator's way back: replaced, history dropped
    assert registry.champion() == v1


def test_an_alias_signed_with_another_key_is_refused(registry, store):
    publish(registry, 1, alias=CHAMPION)
    other = ModelRegistry(store, b"another-signing-key-000000000001", model_name=registry.model_name)
    with pytest.raises(ModelVerificationError) as caught:
        other.champion()
    assert caught.value.kind == WRONG_KEY


def test_an_unsigned_alias_is_refused_until_promoted_again_which_signs_it(registry):
    """An alias written before aliases were signed (or with its signature removed)."""
    v1 = publish(registry, 1, alias=CHAMPION).manifest.version
    v2 = publish(registry, 2, alias=CHAMPION).manifest.version
    unsigned = {k: v for k, v in _alias_doc(registry).items() if k != "signature"}
    assert AliasRecord.from_bytes(json.dumps(unsigned).encode()).history == (v1,)
    _put_alias(registry, unsigned)
    with pytest.raises(ModelVerificationError) as caught:
        registry.champion()
    assert caught.value.kind == MISSING and f"rlsizer models promote {v2}" in str(caught.value)
    assert registry.promote(v2).history == (v1,)  # unchanged, but written back signed
    assert registry.champion() == v2 and "signature" in _alias_doc(registry)
    assert registry.rollback().version == v1


def test_model_published_reaches_kafka_keyed_by_model_name(registry, settings, codec):
    published = publish(registry, 1, alias=CHAMPION)
    KafkaModelEvents(settings)(published.event)
    topic = settings.topic("models")
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        found = None
        while found is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.key() == registry.model_name.encode():
                found = codec.decode(msg.value())
    finally:
        consumer.close()
    assert found == published.event


def test_a_failing_event_sink_still_leaves_the_version_stored(registry):
    def broken_sink(event: ModelPublished) -> None:
        raise EventNotSent("broker down")

    with pytest.raises(EventNotSent) as caught:
        registry.publish(b"bytes", example_draft(), created_at=T0, on_published=broken_sink)
    assert any("IS stored" in note for note in caught.value.__notes__)
    assert registry.list_versions() == ["v20240301T120000Z-run7"]
