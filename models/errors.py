"""Errors of the model registry, each naming what went wrong in words an operator can act on."""

from __future__ import annotations

from typing import Final

# Why a model failed verification; ``ModelVerificationError.kind`` is one of these.
MISSING: Final = "missing"
TAMPERED_ARTIFACT: Final = "tampered_artifact"
TAMPERED_MANIFEST: Final = "tampered_manifest"
TAMPERED_ALIAS: Final = "tampered_alias"
WRONG_KEY: Final = "wrong_key"
VERIFICATION_KINDS: Final = (MISSING, TAMPERED_ARTIFACT, TAMPERED_MANIFEST, TAMPERED_ALIAS, WRONG_KEY)


class ModelRegistryError(RuntimeError):
    """Base of every error raised by ``models``."""


class RegistryUnavailable(ModelRegistryError):
    """The object store cannot be reached (connection refused, timeout, ...)."""


class VersionExists(ModelRegistryError):
    """A version is immutable: publishing it a second time is refused."""


class VersionNotFound(ModelRegistryError):
    """No such version (or alias target) in the registry."""


class NoPreviousChampion(ModelRegistryError):
    """``rollback`` was asked for but the champion has no history."""


class AliasConflict(ModelRegistryError):
    """Another writer changed the alias between our read and our write."""


class ModelVerificationError(ModelRegistryError):
    """A model must not be served: signature or checksum does not hold, or a part is missing."""

    def __init__(self, kind: str, reason: str) -> None:
        if kind not in VERIFICATION_KINDS:
            raise ValueError(f"unknown verification failure kind {kind!r}")
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
