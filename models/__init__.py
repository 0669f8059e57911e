"""The model registry: immutable, HMAC-signed model versions on S3, champion/challenger aliases with
rollback, and a verified local cache that keeps serving through S3 outages."""

from models.aliases import CHALLENGER, CHAMPION, AliasRecord
from models.cache import CacheLoad, ModelCache, VerifiedModel
from models.errors import (
    AliasConflict,
    ModelRegistryError,
    ModelVerificationError,
    NoPreviousChampion,
    RegistryUnavailable,
    VersionExists,
    VersionNotFound,
)
from models.events import EventNotSent, KafkaModelEvents, ModelEventSink
from models.manifest import (
    Manifest,
    ManifestDraft,
    ManifestError,
    TensorSpec,
    canonical_bytes,
    make_version,
    parse_manifest,
)
from models.registry import ModelRegistry, PublishedModel, SignedModel, VersionStatus
from models.signing import SigningKeyError, load_or_create_key
from models.store import ObjectStore, make_s3_client

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AliasConflict",
    "AliasRecord",
    "CacheLoad",
    "EventNotSent",
    "KafkaModelEvents",
    "Manifest",
    "ManifestDraft",
    "ManifestError",
    "ModelCache",
    "ModelEventSink",
    "ModelRegistry",
    "ModelRegistryError",
    "ModelVerificationError",
    "NoPreviousChampion",
    "ObjectStore",
    "PublishedModel",
    "RegistryUnavailable",
    "SignedModel",
    "SigningKeyError",
    "TensorSpec",
    "VerifiedModel",
    "VersionExists",
    "VersionNotFound",
    "VersionStatus",
    "canonical_bytes",
    "load_or_create_key",
    "make_s3_client",
    "make_version",
    "parse_manifest",
]
