"""Why a Kafka login fails, in words: one connection with the configured security (``config.security``)."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException, Producer

from config.security import librdkafka_config
from config.settings import Settings


def kafka_login_error(settings: Settings, *, timeout: float = 5.0) -> str | None:
    """Connect once with the configured security and say why it failed (``None``: metadata was read).

    librdkafka retries a refused login forever and a metadata request only reports
    "transport failure"; its error callback carries the real reason, e.g.
    "SASL SCRAM authentication failed: broker responded with unknown-user".
    The message comes from librdkafka and never contains the password.
    """
    errors: list[KafkaError] = []
    producer = Producer({**librdkafka_config(settings), "log_level": 0, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            producer.poll(0.05)
            auth = [e for e in errors if e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)]
            if auth:
                return f"{settings.kafka_bootstrap}: {auth[0].str()}"
            try:
                producer.list_topics(timeout=min(0.5, max(0.05, deadline - time.monotonic())))
                return None
            except KafkaException:
                continue
        reason = errors[-1].str() if errors else "no answer"
        return f"{settings.kafka_bootstrap}: no metadata within {timeout:.0f}s ({reason})"
    finally:
        producer.flush(0)
