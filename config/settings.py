"""One frozen settings object, read once at the edge from ``RLSIZER_*`` variables.

Every field maps to ``RLSIZER_<FIELD_NAME_UPPER>``; defaults are the embedded
stack's endpoints, so a bare ``rlsizer up`` and its clients agree. Secrets may be
given inline or, preferably, as a file path (``RLSIZER_S3_SECRET_KEY_FILE``,
``RLSIZER_MODEL_HMAC_KEY_FILE``, ...); their values never appear in ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from config.errors import SettingsError as SettingsError  # re-exported: what Settings.from_env raises
from config.security import KafkaConfig, librdkafka_config

ENV_PREFIX = "RLSIZER_"
SECRET_FIELDS = frozenset(
    {"s3_secret_key", "model_hmac_key", "kafka_sasl_password", "registry_basic_auth", "kafka_ssl_key_password"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_ca_location: str = ""
    kafka_ssl_certfile: str = ""  # client certificate (mutual TLS), PEM
    kafka_ssl_keyfile: str = ""
    kafka_ssl_key_password: str = field(default="", repr=False)
    # librdkafka's own log (syslog levels: 0 nothing but emergencies, 3 errors, 6 its default, 7 debug).
    # One-shot CLI commands use 0 unless this is set: their one line on stderr says what failed.
    kafka_log_level: int = 6
    topic_prefix: str = "rlsizer"
    topic_partitions: int = 6
    topic_replication: int = 1
    # how readers find a partition's end: "read" (one fetch; tansu's ListOffsets is short) or "broker"
    # (ListOffsets as answered: right on Kafka); streams.end_offsets
    end_offsets: str = "read"
    # Schema registry
    registry_url: str = "http://127.0.0.1:8081"
    registry_basic_auth: str = field(default="", repr=False)
    registry_ca_location: str = ""
    # S3
    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_region: str = "us-east-1"
    s3_access_key: str = "rlsizer"
    s3_secret_key: str = field(default="rlsizer-local-only", repr=False)
    s3_bucket: str = "rlsizer-models"
    s3_ca_bundle: str = ""  # CA file for a TLS endpoint with a private CA
    # Models
    model_name: str = "cvar-ppo"
    model_hmac_key: str = field(default="", repr=False)
    model_poll_seconds: float = 7200.0
    # Local state
    data_dir: Path = Path(".rlsizer")
    # Worker
    worker_web_port: int = 6066
    worker_web_host: str = "127.0.0.1"
    decision_timeout_ms: int = 500
    strategy_map: str = ""
    # how long (event time, per symbol) a decided signal is remembered; 0: forever (agents.retention)
    decided_retention_days: float = 30.0
    # an input stamped more than this ahead of the worker's clock is dead-lettered (future_timestamp); 0: no limit
    max_future_seconds: float = 300.0
    # a held input partition with records to apply and none applied for this long is a stall (agents.glue.watchdog)
    worker_stall_seconds: float = 30.0
    # any event timestamp before this is invalid_value (a unit error: milliseconds or seconds in timestamp-micros).
    # Events check it when built, in every process, from the environment variable (schemas.events): this field
    # validates it and passes it on to the processes rlsizer starts.
    earliest_event_time: str = "1990-01-01"
    # Trainer
    train_interval_seconds: float = 6 * 3600.0
    train_min_new_outcomes: int = 200
    # Health
    health_interval_seconds: float = 1800.0
    # how far back `rlsizer health` and the monitor read the workers' own reports on the health topic
    health_report_window_seconds: float = 86400.0
    monitor_web_port: int = 0  # the monitor's /metrics (rlsizer_health_status); 0: not served
    monitor_web_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        from schemas.events import parse_earliest_event_time  # lazy: loads pyarrow, numpy, fastavro only when used

        try:
            parse_earliest_event_time(self.earliest_event_time)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    def __repr__(self) -> str:  # secrets stay out of logs
        shown = ", ".join(
            f"{f.name}={'***' if f.name in SECRET_FIELDS and getattr(self, f.name) else repr(getattr(self, f.name))}"
            for f in fields(self)
        )
        return f"Settings({shown})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            raw: str | None = env.get(key)
            file_key = key + "_FILE"
            if raw is None and file_key in env:
                try:
                    raw = Path(env[file_key]).read_text().strip()
                except OSError as exc:
                    raise SettingsError(f"{file_key}: cannot read {env[file_key]!r}: {exc.strerror}") from exc
            if raw is not None:
                values[f.name] = _parse(key, hints[f.name], raw)
        values.update(overrides)
        settings = cls(**values)
        if settings.end_offsets not in ("read", "broker"):
            raise SettingsError(f"RLSIZER_END_OFFSETS={settings.end_offsets!r} must be read or broker")
        return settings

    def to_env(self) -> dict[str, str]:
        """``RLSIZER_*`` variables that rebuild these settings in a child process (secrets included: never log it)."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    def topic(self, name: str) -> str:
        """Full topic name for a short name (``signals`` -> ``rlsizer.signals``)."""
        return f"{self.topic_prefix}.{name}" if self.topic_prefix else name

    def kafka_config(self) -> KafkaConfig:
        """librdkafka connection settings shared by producers, consumers and admin (see ``config.security``)."""
        return librdkafka_config(self)


def setting_env_names() -> frozenset[str]:
    """Every environment variable the settings read (``_FILE`` variants included)."""
    names = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    return frozenset(names | {n + "_FILE" for n in names})


def _parse(key: str, hint: Any, raw: str) -> Any:
    try:
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint is Path:
            return Path(raw)
        return raw
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a valid {getattr(hint, '__name__', hint)}") from None
