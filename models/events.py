"""``ModelPublished`` events for registry changes, and a Kafka sink that sends them.

Building the event is pure; sending is the caller's choice: ``ModelRegistry``
accepts any ``Callable[[ModelPublished], None]``. ``KafkaModelEvents`` is the
production one (confluent-kafka, Confluent-framed Avro, keyed by model name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from config.settings import Settings
from models.manifest import Manifest
from models.signing import Signature
from schemas.events import ModelPublished, utc_now
from streams.codec_factory import make_codec

ModelEventSink = Callable[[ModelPublished], None]


class EventNotSent(RuntimeError):
    """The registry change happened, but its ``ModelPublished`` event could not be sent."""


def model_published(
    manifest: Manifest, signature: Signature, *, artifact_uri: str, manifest_uri: str, alias: str | None
) -> ModelPublished:
    return ModelPublished(
        ts_event=utc_now(),
        model_name=manifest.model_name,
        version=manifest.version,
        artifact_uri=artifact_uri,
        manifest_uri=manifest_uri,
        sha256=manifest.sha256,
        signature=signature.hmac_hex,
        feature_set=manifest.feature_set,
        alias=alias,
        metrics=dict(manifest.metrics),
    )


class KafkaModelEvents:
    """Sends ``ModelPublished`` to ``settings.topic("models")``, waiting for the broker's ack."""

    def __init__(self, settings: Settings, *, producer: Any = None, codec: Any = None, timeout: float = 15.0) -> None:
        self._settings = settings
        self._topic = settings.topic("models")
        self._timeout = timeout
        self._codec = codec or make_codec(settings)
        self._producer = producer or Producer(
            {**settings.kafka_config(), "acks": "all", "message.timeout.ms": str(int(timeout * 1000))}
        )

    def __call__(self, event: ModelPublished) -> None:
        try:
            value = self._codec.encode(self._topic, event)
        except Exception as exc:  # the registry client raises requests/HTTP errors of many kinds
            raise EventNotSent(
                f"schema registry at {self._settings.registry_url} unreachable or refused ModelPublished: {exc}"
            ) from exc
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        self._producer.produce(self._topic, key=event.model_name.encode(), value=value, on_delivery=delivered)
        remaining = self._producer.flush(self._timeout)
        if remaining or errors:
            why = errors[0] if errors else f"not acknowledged within {self._timeout:.0f}s"
            raise EventNotSent(
                f"ModelPublished for {event.model_name} {event.version} not delivered to {self._topic} at {self._settings.kafka_bootstrap}: {why}"
            )
