"""HMAC-SHA256 signatures over canonical manifest bytes, and full model verification.

A signature document (``manifest.sig``) carries the hex HMAC and a key id: an HMAC
of a fixed label under the same key, so a reader can tell "signed with another
key" from "manifest changed after signing" without revealing anything about the
key. The key itself is never logged, printed or put in an exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from config.settings import Settings
from models.errors import MISSING, TAMPERED_ARTIFACT, TAMPERED_MANIFEST, WRONG_KEY, ModelVerificationError
from models.manifest import Manifest, ManifestError, parse_manifest

ALGORITHM: Final = "HMAC-SHA256"
KEY_FILE_NAME: Final = "model-hmac.key"
MIN_KEY_BYTES: Final = 16
_KEY_ID_LABEL: Final = b"rlsizer/model-signing-key-id/v1"


class SigningKeyError(ValueError):
    """The signing key is missing, too short, or its file is unsafe."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    algorithm: str
    key_id: str
    hmac_hex: str

    def to_bytes(self) -> bytes:
        doc = {"algorithm": self.algorithm, "key_id": self.key_id, "hmac": self.hmac_hex}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def parse_signature(data: bytes) -> Signature:
    try:
        doc = json.loads(data.decode("ascii"))
        sig = Signature(algorithm=doc["algorithm"], key_id=doc["key_id"], hmac_hex=doc["hmac"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ModelVerificationError(TAMPERED_MANIFEST, f"signature file is malformed ({type(exc).__name__})") from None
    if sig.algorithm != ALGORITHM:
        raise ModelVerificationError(TAMPERED_MANIFEST, f"signature algorithm {sig.algorithm!r} is not {ALGORITHM}")
    return sig


def key_id(key: bytes) -> str:
    """A public identifier of a key (16 hex digits); reveals nothing usable about the key."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def sign(manifest_bytes: bytes, key: bytes) -> Signature:
    _check_key(key)
    digest = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    return Signature(algorithm=ALGORITHM, key_id=key_id(key), hmac_hex=digest)


def verify_signature(
    manifest_bytes: bytes,
    signature: Signature,
    key: bytes,
    *,
    what: str = "manifest",
    tampered: str = TAMPERED_MANIFEST,
) -> None:
    """Raise ``ModelVerificationError`` (wrong_key or ``tampered``) unless the signature holds.

    ``what`` names the signed document in the messages (an alias record is signed the same way).
    """
    expected = sign(manifest_bytes, key)
    if not hmac.compare_digest(expected.hmac_hex, signature.hmac_hex):
        if not hmac.compare_digest(expected.key_id, signature.key_id):
            raise ModelVerificationError(
                WRONG_KEY, f"{what} was signed with key id {signature.key_id}, ours is {expected.key_id}"
            )
        raise ModelVerificationError(tampered, f"{what} bytes do not match their HMAC-SHA256 signature")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_manifest(
    manifest_bytes: bytes | None, signature_bytes: bytes | None, key: bytes, *, model_name: str, version: str
) -> Manifest:
    """The manifest, only if it is present, signed under ``key``, and names this model and version."""
    for part, data in (("manifest.json", manifest_bytes), ("manifest.sig", signature_bytes)):
        if data is None:
            raise ModelVerificationError(MISSING, f"{model_name} {version}: {part} is missing")
    assert manifest_bytes is not None and signature_bytes is not None
    verify_signature(manifest_bytes, parse_signature(signature_bytes), key)
    try:
        manifest = parse_manifest(manifest_bytes)
    except ManifestError as exc:  # signed but unreadable: written by a buggy or foreign writer
        raise ModelVerificationError(TAMPERED_MANIFEST, f"signed manifest is invalid: {exc}") from exc
    if (manifest.model_name, manifest.version) != (model_name, version):
        raise ModelVerificationError(
            TAMPERED_MANIFEST,
            f"manifest stored as {model_name} {version} describes {manifest.model_name} {manifest.version}",
        )
    return manifest


def verify_model(
    artifact: bytes | None,
    manifest_bytes: bytes | None,
    signature_bytes: bytes | None,
    key: bytes,
    *,
    model_name: str,
    version: str,
) -> Manifest:
    """Check every part of one stored model version; return its manifest only if all hold.

    Order: parts present, signature (key, then manifest bytes), manifest names this
    very model and version, then artifact size and sha256.
    """
    if manifest_bytes is not None and signature_bytes is not None and artifact is None:
        raise ModelVerificationError(MISSING, f"{model_name} {version}: model.onnx is missing")
    manifest = verify_manifest(manifest_bytes, signature_bytes, key, model_name=model_name, version=version)
    assert artifact is not None
    if len(artifact) != manifest.size:
        raise ModelVerificationError(
            TAMPERED_ARTIFACT,
            f"{model_name} {version}: artifact is {len(artifact)} bytes, manifest says {manifest.size}",
        )
    actual = sha256_hex(artifact)
    if not hmac.compare_digest(actual, manifest.sha256):
        raise ModelVerificationError(
            TAMPERED_ARTIFACT,
            f"{model_name} {version}: artifact sha256 {actual[:12]}… != manifest {manifest.sha256[:12]}…",
        )
    return manifest


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(f"model signing key must be at least {MIN_KEY_BYTES} bytes")


def load_or_create_key(settings: Settings) -> bytes:
    """The signing key: ``settings.model_hmac_key`` if set, else ``data_dir/model-hmac.key``.

    The file is created (random 32 bytes, hex, mode 0600) when absent. An existing
    file readable by group or others is refused, as ssh does with private keys.
    """
    if settings.model_hmac_key:
        key = settings.model_hmac_key.encode("utf-8")
        _check_key(key)
        return key
    path = Path(settings.data_dir) / KEY_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole under a temporary name, then linked: a concurrent reader never
        # sees a half-written key, and of two creators the first link wins.
        tmp = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    key = path.read_bytes().strip()
    _check_key(key)
    return key
