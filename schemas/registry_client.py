"""``SchemaRegistry`` over HTTP, backed by confluent-kafka's own ``SchemaRegistryClient``.

Using the standard client means our codec and any Confluent serializer agree on
subjects and ids against Confluent Schema Registry, Karapace or our embedded one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient


class HttpSchemaRegistry:
    def __init__(self, url: str, *, basic_auth: str | None = None) -> None:
        conf: dict[str, Any] = {"url": url}
        if basic_auth:
            conf["basic.auth.user.info"] = basic_auth
        self._client = SchemaRegistryClient(conf)

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> HttpSchemaRegistry:
        """From a full ``SchemaRegistryClient`` configuration (basic auth, TLS), e.g. ``config.security.registry_client_config``."""
        registry = cls.__new__(cls)
        registry._client = SchemaRegistryClient(dict(conf))
        return registry

    @property
    def client(self) -> SchemaRegistryClient:
        return self._client

    def register(self, subject: str, schema: str) -> int:
        return self._client.register_schema(subject, Schema(schema, "AVRO"))

    def schema_by_id(self, schema_id: int) -> str:
        text = self._client.get_schema(schema_id).schema_str
        if text is None:
            raise LookupError(f"schema id {schema_id} has no schema text")
        return text
