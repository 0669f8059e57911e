"""``ModelRegistry``: immutable signed model versions on S3, champion/challenger aliases, rollback.

Publishing writes the artifact first with a conditional create (that write claims
the version), then the manifest, then its signature; a version without all three
never verifies. Reading always verifies: ``fetch_verified`` returns bytes only
after the signature and the artifact checksum hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from config.settings import Settings
from models.aliases import (
    CHALLENGER,
    CHAMPION,
    AliasRecord,
    check_alias,
    moved,
    rolled_back,
    signed_bytes,
    split_signed,
)
from models.errors import MISSING, TAMPERED_ALIAS, AliasConflict, ModelVerificationError, VersionExists, VersionNotFound
from models.events import ModelEventSink, model_published
from models.manifest import (
    Manifest,
    ManifestDraft,
    ManifestError,
    canonical_bytes,
    check_safe_name,
    make_version,
    parse_manifest,
)
from models.signing import (
    Signature,
    load_or_create_key,
    parse_signature,
    sha256_hex,
    sign,
    verify_manifest,
    verify_model,
    verify_signature,
)
from models.store import (
    ARTIFACT_FILE,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    ObjectStore,
    alias_key,
    make_s3_client,
    version_prefix,
    versions_prefix,
)
from schemas.events import ModelPublished, utc_now

log = logging.getLogger(__name__)

_ALIAS_WRITE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedModel:
    manifest: Manifest
    signature: Signature
    artifact_uri: str
    manifest_uri: str
    alias: str | None
    event: ModelPublished


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedModel:
    """A verified version with the exact stored bytes (what the local cache keeps)."""

    artifact: bytes
    manifest_bytes: bytes
    signature_bytes: bytes
    manifest: Manifest


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionStatus:
    """What ``show`` reports: the manifest as stored (if readable) and whether it verifies."""

    version: str
    manifest: Manifest | None
    verified: bool
    problem: str | None  # the verification failure, "kind: reason"
    aliases: tuple[str, ...]


class ModelRegistry:
    def __init__(
        self, store: ObjectStore, key: bytes, *, model_name: str, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.store = store
        self.model_name = check_safe_name("model_name", model_name)
        self._key = key
        self._clock = clock

    def __repr__(self) -> str:  # the key stays out of logs
        return f"ModelRegistry(model_name={self.model_name!r}, bucket={self.store.bucket!r}, endpoint={self.store.endpoint!r})"

    @classmethod
    def from_settings(cls, settings: Settings, *, client: Any = None, key: bytes | None = None) -> ModelRegistry:
        store = ObjectStore(client if client is not None else make_s3_client(settings), settings.s3_bucket)
        return cls(store, key if key is not None else load_or_create_key(settings), model_name=settings.model_name)

    # --- versions -------------------------------------------------------------------------

    def _key_of(self, version: str, part: str) -> str:
        return version_prefix(self.model_name, check_safe_name("version", version)) + part

    def publish(
        self,
        artifact: bytes,
        draft: ManifestDraft,
        *,
        alias: str | None = None,
        version: str | None = None,
        created_at: datetime | None = None,
        on_published: ModelEventSink | None = None,
    ) -> PublishedModel:
        """Store a new immutable version, optionally point an alias at it, then emit the event.

        Raises ``VersionExists`` if the version is already there. If ``on_published``
        fails, the version is stored anyway and the error says so.
        """
        if alias is not None:
            check_alias(alias)
        created = created_at or self._clock()
        sha = sha256_hex(artifact)
        version = version or make_version(created, draft.run_name or sha[:12])
        manifest = Manifest.from_draft(
            draft, model_name=self.model_name, version=version, sha256=sha, size=len(artifact), created_at=created
        )
        manifest_bytes = canonical_bytes(manifest)
        signature = sign(manifest_bytes, self._key)
        parts = ((ARTIFACT_FILE, artifact), (MANIFEST_FILE, manifest_bytes), (SIGNATURE_FILE, signature.to_bytes()))
        for part, data in parts:
            if not self.store.put(self._key_of(version, part), data, if_absent=True):
                raise VersionExists(
                    f"{self.model_name} {version} already exists ({part}); versions are immutable, publish a new one"
                )
        if alias is not None:
            self._move_alias(alias, lambda current: moved(current, alias, version, self._clock()))
        uris = {
            "artifact_uri": self.store.uri(self._key_of(version, ARTIFACT_FILE)),
            "manifest_uri": self.store.uri(self._key_of(version, MANIFEST_FILE)),
        }
        event = model_published(manifest, signature, alias=alias, **uris)
        published = PublishedModel(manifest=manifest, signature=signature, alias=alias, event=event, **uris)
        _notify(on_published, published.event)
        return published

    def list_versions(self) -> list[str]:
        """Every stored version name, oldest first (version names sort by time)."""
        return sorted(self.store.child_prefixes(versions_prefix(self.model_name)))

    def _read(self, version: str, part: str) -> bytes | None:
        found = self.store.get(self._key_of(version, part))
        return None if found is None else found[0]

    def fetch_signed(self, version: str) -> SignedModel:
        """All stored bytes of ``version``, verified; ``ModelVerificationError`` otherwise."""
        manifest_bytes = self._read(version, MANIFEST_FILE)
        signature_bytes = self._read(version, SIGNATURE_FILE)
        artifact = self._read(version, ARTIFACT_FILE)
        manifest = verify_model(
            artifact, manifest_bytes, signature_bytes, self._key, model_name=self.model_name, version=version
        )
        assert artifact is not None and manifest_bytes is not None and signature_bytes is not None
        return SignedModel(
            artifact=artifact, manifest_bytes=manifest_bytes, signature_bytes=signature_bytes, manifest=manifest
        )

    def read_manifest(self, version: str) -> Manifest:
        """The manifest of ``version`` with its signature checked (the artifact is not downloaded)."""
        return verify_manifest(
            self._read(version, MANIFEST_FILE),
            self._read(version, SIGNATURE_FILE),
            self._key,
            model_name=self.model_name,
            version=version,
        )

    def fetch_verified(self, version: str) -> tuple[bytes, Manifest]:
        signed = self.fetch_signed(version)
        return signed.artifact, signed.manifest

    def show(self, version: str) -> VersionStatus:
        """The stored manifest and its verification status; ``VersionNotFound`` if nothing is stored."""
        aliases = tuple(a for a in (CHAMPION, CHALLENGER) if self.verified_alias(a) == version)
        try:
            manifest = self.fetch_signed(version).manifest
            return VersionStatus(version=version, manifest=manifest, verified=True, problem=None, aliases=aliases)
        except ModelVerificationError as exc:
            raw = self._read(version, MANIFEST_FILE)
            if raw is None and exc.kind == MISSING and self._read(version, ARTIFACT_FILE) is None:
                raise VersionNotFound(f"{self.model_name} has no version {version}") from None
            return VersionStatus(
                version=version, manifest=_try_parse(raw), verified=False, problem=str(exc), aliases=aliases
            )

    def verify_local(
        self, artifact: bytes | None, manifest_bytes: bytes | None, signature_bytes: bytes | None, version: str
    ) -> Manifest:
        """Verify bytes kept elsewhere (the local cache) with this registry's key."""
        return verify_model(
            artifact, manifest_bytes, signature_bytes, self._key, model_name=self.model_name, version=version
        )

    def signature_of(self, version: str) -> Signature:
        raw = self._read(version, SIGNATURE_FILE)
        if raw is None:
            raise ModelVerificationError(MISSING, f"{self.model_name} {version}: manifest.sig is missing")
        return parse_signature(raw)

    # --- aliases --------------------------------------------------------------------------

    def alias(self, alias: str) -> AliasRecord | None:
        """The alias record, only if its signature holds (``ModelVerificationError`` otherwise, unsigned included)."""
        found = self.store.get(alias_key(self.model_name, check_alias(alias)))
        if found is None:
            return None
        record, signed = self._read_alias(found[0], alias)
        if not signed:
            raise ModelVerificationError(
                MISSING,
                f"{self.model_name} {alias} alias (naming {record.version}) is not signed: written before aliases were "
                f"signed, or its signature was removed; check that version (rlsizer models show {record.version}), "
                f"then sign the alias again with: rlsizer models promote {record.version}",
            )
        return record

    def verified_alias(self, alias: str) -> str | None:
        """The version ``alias`` names, or ``None`` when there is no alias or it fails verification."""
        try:
            record = self.alias(alias)
        except ModelVerificationError:
            return None
        return None if record is None else record.version

    def _read_alias(self, raw: bytes, alias: str) -> tuple[AliasRecord, bool]:
        """The stored record and whether it is signed; ``ModelVerificationError`` if a signature is there but fails."""
        record, signature = split_signed(raw)
        if record.alias != alias:
            raise ModelVerificationError(
                TAMPERED_ALIAS, f"{self.model_name} {alias} alias holds the record of {record.alias}"
            )
        if signature is None:
            return record, False
        try:
            verify_signature(
                record.to_bytes(),
                signature,
                self._key,
                what=f"{self.model_name} {alias} alias",
                tampered=TAMPERED_ALIAS,
            )
        except ModelVerificationError as exc:
            raise ModelVerificationError(
                exc.kind, f"{exc.reason}; point it at a verified version again with: rlsizer models promote VERSION"
            ) from None
        return record, True

    def champion(self) -> str | None:
        record = self.alias(CHAMPION)
        return None if record is None else record.version

    def challenger(self) -> str | None:
        record = self.alias(CHALLENGER)
        return None if record is None else record.version

    def set_alias(self, alias: str, version: str) -> AliasRecord:
        """Point ``alias`` at ``version`` after verifying it (an unverifiable model is never aliased)."""
        check_alias(alias)
        self.fetch_signed(version)
        return self._move_alias(alias, lambda current: moved(current, alias, version, self._clock()))

    def promote(self, version: str | None = None) -> AliasRecord:
        """Make ``version`` (default: the challenger) champion; the old champion joins the history."""
        if version is None:
            version = self.challenger()
            if version is None:
                raise VersionNotFound(f"{self.model_name} has no challenger to promote; name a version")
        record = self.set_alias(CHAMPION, version)
        challenger = self.store.get(alias_key(self.model_name, CHALLENGER))
        if challenger is not None and AliasRecord.from_bytes(challenger[0]).version == version:  # only to clear it
            self.store.delete(alias_key(self.model_name, CHALLENGER))
        return record

    def rollback(self) -> AliasRecord:
        """The champion goes back to the previous champion (verified first); ``NoPreviousChampion`` if none.

        Refused while the champion alias fails its signature: its history cannot be trusted.
        """

        def back(current: AliasRecord | None) -> AliasRecord:
            target = rolled_back(current, self._clock())
            self.fetch_signed(target.version)
            return target

        return self._move_alias(CHAMPION, back, replace_broken=False)

    def alias_event(self, alias: str, version: str) -> ModelPublished:
        """The ``ModelPublished`` announcing that ``alias`` now names ``version`` (after promote/rollback)."""
        manifest = self.fetch_signed(version).manifest
        signature = self.signature_of(version)
        return model_published(
            manifest,
            signature,
            artifact_uri=self.store.uri(self._key_of(version, ARTIFACT_FILE)),
            manifest_uri=self.store.uri(self._key_of(version, MANIFEST_FILE)),
            alias=check_alias(alias),
        )

    def _move_alias(
        self, alias: str, change: Callable[[AliasRecord | None], AliasRecord], *, replace_broken: bool = True
    ) -> AliasRecord:
        """Write ``change(current)``, signed, with a conditional write (retried if another writer came between).

        An unsigned current record (written before aliases were signed) is taken as it is and
        written back signed, even unchanged. One whose signature fails is refused, or, with
        ``replace_broken``, replaced by a record without history (logged).
        """
        key = alias_key(self.model_name, alias)
        for _ in range(_ALIAS_WRITE_ATTEMPTS):
            found = self.store.get(key)
            current, signed = None, False
            if found is not None:
                try:
                    current, signed = self._read_alias(found[0], alias)
                except ModelVerificationError as exc:
                    if not replace_broken:
                        raise
                    log.warning(
                        "%s %s alias fails verification (%s): replaced, its history dropped",
                        self.model_name,
                        alias,
                        exc,
                    )
            updated = change(current)
            if updated is current and signed:
                return updated
            written = self.store.put(
                key,
                signed_bytes(updated, sign(updated.to_bytes(), self._key)),
                if_absent=found is None,
                if_match=None if found is None else found[1],
            )
            if written:
                return updated
        raise AliasConflict(
            f"{self.model_name} {alias} kept changing under us ({_ALIAS_WRITE_ATTEMPTS} attempts); retry"
        )


def _try_parse(raw: bytes | None) -> Manifest | None:
    if raw is None:
        return None
    try:
        return parse_manifest(raw)
    except ManifestError:
        return None


def _notify(sink: ModelEventSink | None, event: ModelPublished) -> None:
    if sink is None:
        return
    try:
        sink(event)
    except Exception as exc:
        exc.add_note(f"{event.model_name} {event.version} IS stored in the registry; only the event was not sent")
        raise
