"""S3 access for the registry: the client factory, key layout, and the few object operations used.

Layout in ``settings.s3_bucket``::

    models/{name}/versions/{version}/model.onnx
    models/{name}/versions/{version}/manifest.json
    models/{name}/versions/{version}/manifest.sig
    models/{name}/aliases/{champion|challenger}.json

Every botocore connection failure becomes ``RegistryUnavailable``; a missing
object is ``None``, not an exception; conditional writes report a lost race as
``False``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from config.security import boto3_client_kwargs
from config.settings import Settings
from models.errors import ModelRegistryError, RegistryUnavailable

ARTIFACT_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
SIGNATURE_FILE: Final = "manifest.sig"
_NOT_FOUND: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION: Final = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
T = TypeVar("T")


def make_s3_client(
    settings: Settings, *, connect_timeout: float = 2.0, read_timeout: float = 15.0, attempts: int = 2
) -> Any:
    """A boto3 S3 client for the configured endpoint (path-style, bounded timeouts and retries)."""
    return boto3.client(
        "s3",
        **boto3_client_kwargs(settings),  # endpoint, region, keys, CA bundle
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": attempts, "mode": "standard"},
        ),
    )


def version_prefix(name: str, version: str) -> str:
    return f"models/{name}/versions/{version}/"


def versions_prefix(name: str) -> str:
    return f"models/{name}/versions/"


def alias_key(name: str, alias: str) -> str:
    return f"models/{name}/aliases/{alias}.json"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class ObjectStore:
    """The object operations the registry needs, on one bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except ClientError:
            raise
        except BotoCoreError as exc:  # connection refused, timeouts, DNS, ...
            raise RegistryUnavailable(f"S3 at {self.endpoint} unreachable while {action}: {exc}") from exc

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        with self._errors(action):
            try:
                return fn()
            except ClientError as exc:
                raise ModelRegistryError(f"S3 refused {action} in bucket {self.bucket}: {exc}") from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (idempotent)."""
        with self._errors(f"creating bucket {self.bucket}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _code(exc) not in _NOT_FOUND | {"NoSuchBucket"}:
                    raise ModelRegistryError(f"S3 bucket {self.bucket}: {exc}") from exc
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise ModelRegistryError(f"cannot create S3 bucket {self.bucket}: {exc}") from exc

    def get(self, key: str) -> tuple[bytes, str] | None:
        """Object bytes and ETag, or ``None`` if absent."""
        with self._errors(f"reading {key}"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
                return response["Body"].read(), response["ETag"]
            except ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    return None
                raise ModelRegistryError(f"S3 refused reading {self.uri(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        with self._errors(f"checking {key}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
                return True
            except ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    return False
                raise ModelRegistryError(f"S3 refused checking {self.uri(key)}: {exc}") from exc

    def put(self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None) -> bool:
        """Write ``data``; with a condition, return ``False`` when it does not hold.

        ``if_absent`` uses ``If-None-Match: *`` and also checks first, for servers
        that ignore the header; ``if_match`` uses ``If-Match: <etag>``.
        """
        if if_absent and self.exists(key):
            return False
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        with self._errors(f"writing {key}"):
            try:
                self.client.put_object(**kwargs)
                return True
            except ClientError as exc:
                if _code(exc) in _PRECONDITION:
                    return False
                raise ModelRegistryError(f"S3 refused writing {self.uri(key)}: {exc}") from exc

    def delete(self, key: str) -> None:
        self._call(f"deleting {key}", lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    def child_prefixes(self, prefix: str) -> list[str]:
        """Names of the 'folders' directly under ``prefix``."""
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors(f"listing {prefix}"):
            try:
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                    for entry in page.get("CommonPrefixes", []):
                        names.append(entry["Prefix"][len(prefix) :].rstrip("/"))
            except ClientError as exc:
                raise ModelRegistryError(f"S3 refused listing {self.uri(prefix)}: {exc}") from exc
        return names
