from __future__ import annotations

import os
import stat
from dataclasses import fields, replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from config.settings import Settings
from models.errors import MISSING, TAMPERED_ARTIFACT, TAMPERED_MANIFEST, WRONG_KEY, ModelVerificationError
from models.manifest import ManifestError, canonical_bytes
from models.signing import (
    KEY_FILE_NAME,
    SigningKeyError,
    load_or_create_key,
    parse_signature,
    sha256_hex,
    sign,
    verify_model,
    verify_signature,
)
from tests.unit.models.strategies import example_manifest, manifests

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def _stored(artifact: bytes = b"onnx-bytes", **overrides: object) -> tuple[bytes, bytes, bytes]:
    manifest = example_manifest(sha256=sha256_hex(artifact), size=len(artifact), **overrides)
    manifest_bytes = canonical_bytes(manifest)
    return artifact, manifest_bytes, sign(manifest_bytes, KEY).to_bytes()


def test_sign_verify_roundtrip_returns_the_manifest():
    artifact, manifest_bytes, sig = _stored()
    manifest = verify_model(artifact, manifest_bytes, sig, KEY, model_name="cvar-ppo", version="v20240131T120000Z-run7")
    assert manifest.sha256 == sha256_hex(artifact)
    assert parse_signature(sig).hmac_hex == sign(manifest_bytes, KEY).hmac_hex


@given(manifests(), manifests(), st.sampled_from([f.name for f in fields(example_manifest())]))
def test_any_change_to_any_field_breaks_the_signature(original, other, field_name):
    try:
        changed = replace(original, **{field_name: getattr(other, field_name)})
    except ManifestError:  # e.g. the other data_to precedes this data_from
        assume(False)
    assume(canonical_bytes(changed) != canonical_bytes(original))
    signature = sign(canonical_bytes(original), KEY)
    verify_signature(canonical_bytes(original), signature, KEY)
    with pytest.raises(ModelVerificationError) as caught:
        verify_signature(canonical_bytes(changed), signature, KEY)
    assert caught.value.kind == TAMPERED_MANIFEST


@given(manifests(), st.data())
def test_any_flipped_byte_breaks_the_signature(manifest, data):
    original = canonical_bytes(manifest)
    index = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    flipped = bytearray(original)
    flipped[index] ^= 1 << bit
    with pytest.raises(ModelVerificationError) as caught:
        verify_signature(bytes(flipped), sign(original, KEY), KEY)
    assert caught.value.kind == TAMPERED_MANIFEST


def test_wrong_key_is_told_apart_from_tampering():
    artifact, manifest_bytes, sig = _stored()
    with pytest.raises(ModelVerificationError) as caught:
        verify_model(artifact, manifest_bytes, sig, OTHER_KEY, model_name="cvar-ppo", version="v20240131T120000Z-run7")
    assert caught.value.kind == WRONG_KEY
    assert "signed with key id" in caught.value.reason


def test_tampered_artifact_is_refused():
    artifact, manifest_bytes, sig = _stored()
    with pytest.raises(ModelVerificationError) as caught:
        verify_model(b"onnx-bytez", manifest_bytes, sig, KEY, model_name="cvar-ppo", version="v20240131T120000Z-run7")
    assert caught.value.kind == TAMPERED_ARTIFACT
    assert "sha256" in caught.value.reason
    with pytest.raises(ModelVerificationError) as caught:
        verify_model(artifact + b"!", manifest_bytes, sig, KEY, model_name="cvar-ppo", version="v20240131T120000Z-run7")
    assert caught.value.kind == TAMPERED_ARTIFACT
    assert "manifest says 10" in caught.value.reason


def test_a_signed_manifest_moved_to_another_version_is_refused():
    artifact, manifest_bytes, sig = _stored()
    with pytest.raises(ModelVerificationError) as caught:
        verify_model(artifact, manifest_bytes, sig, KEY, model_name="cvar-ppo", version="v20991231T000000Z-newer")
    assert caught.value.kind == TAMPERED_MANIFEST
    assert "describes cvar-ppo v20240131T120000Z-run7" in caught.value.reason


@pytest.mark.parametrize("missing", [0, 1, 2])
def test_missing_parts_are_named(missing):
    parts = list(_stored())
    parts[missing] = None
    with pytest.raises(ModelVerificationError) as caught:
        verify_model(*parts, KEY, model_name="cvar-ppo", version="v1")
    assert caught.value.kind == MISSING
    assert ["model.onnx", "manifest.json", "manifest.sig"][missing] in caught.value.reason


def test_malformed_signature_file_is_tampering():
    artifact, manifest_bytes, _ = _stored()
    with pytest.raises(ModelVerificationError) as caught:
        verify_model(
            artifact, manifest_bytes, b"not json", KEY, model_name="cvar-ppo", version="v20240131T120000Z-run7"
        )
    assert caught.value.kind == TAMPERED_MANIFEST


def test_key_file_is_created_private_and_reused(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    key = load_or_create_key(settings)
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert load_or_create_key(settings) == key
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE_NAME]  # no temp files left


def test_configured_key_wins_and_no_file_is_created(tmp_path):
    settings = Settings(data_dir=tmp_path, model_hmac_key="configured-key-0123456789")
    assert load_or_create_key(settings) == b"configured-key-0123456789"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_unsafe_or_short_keys_are_refused(tmp_path):
    path = tmp_path / KEY_FILE_NAME
    path.write_text("x" * 40)
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_or_create_key(Settings(data_dir=tmp_path))
    with pytest.raises(SigningKeyError, match="at least 16 bytes"):
        load_or_create_key(Settings(data_dir=tmp_path, model_hmac_key="short"))


def test_errors_never_contain_the_key():
    artifact, manifest_bytes, sig = _stored()
    secret = b"a-very-secret-signing-key-0001"
    with pytest.raises(ModelVerificationError) as caught:
        verify_model(artifact, manifest_bytes, sig, secret, model_name="cvar-ppo", version="v20240131T120000Z-run7")
    assert secret.decode() not in str(caught.value)
