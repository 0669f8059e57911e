"""The one place an ``EventCodec`` for a deployment is built: registry URL, basic auth and TLS from settings."""

from __future__ import annotations

from config.security import registry_client_config
from config.settings import Settings
from schemas.codec import EventCodec
from schemas.registry_client import HttpSchemaRegistry
from streams.topics import subject_for


def make_codec(settings: Settings) -> EventCodec:
    """The codec on the deployment's registry, with the catalogue's subject names (``streams.topics.subject_for``)."""
    return EventCodec(HttpSchemaRegistry.from_config(registry_client_config(settings)), subject_for=subject_for)
