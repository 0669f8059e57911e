"""One place that turns ``Settings`` into the security part of every client's configuration.

- Kafka through librdkafka (confluent-kafka producers, consumers, admin): ``librdkafka_config``;
- Kafka through aiokafka / Faust: ``aiokafka_security`` and ``ssl_context`` (Faust's credentials object is
  made from these in ``agents.glue.faust.credentials``, next to Faust);
- the schema registry (confluent's ``SchemaRegistryClient`` and plain ``requests``):
  ``registry_client_config`` and ``registry_requests_kwargs``;
- S3 (boto3): ``boto3_client_kwargs``.

Supported Kafka protocols: PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL, with SASL
mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, TLS server verification against
a CA file (or the system store) and optional client certificates (mutual TLS).

Inconsistent settings fail here, before any client exists, with a message naming
the ``RLSIZER_*`` variables to fix (a CA file set while the protocol is PLAINTEXT
is an error, not silently ignored: the operator believes TLS is on). Secrets are
only ever placed in the returned configurations, never in an error message.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from config.errors import SettingsError

KafkaConfig = dict[str, str | int | float | bool]  # a confluent-kafka client configuration (librdkafka values)

if TYPE_CHECKING:
    from config.settings import Settings

PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class SecurityConfigError(SettingsError):
    """Security settings that cannot work together (the message names the variables)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSecurity:
    """The validated Kafka security settings; ``repr`` never shows a password."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ca_location: str = ""
    certfile: str = ""
    keyfile: str = ""
    key_password: str = field(default="", repr=False)

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def kafka_security(settings: Settings) -> KafkaSecurity:
    """Validate and normalise the ``kafka_*`` security settings."""
    protocol = settings.kafka_security_protocol.strip().upper() or "PLAINTEXT"
    if protocol not in PROTOCOLS:
        raise SecurityConfigError(
            f"RLSIZER_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol!r}: expected one of {', '.join(PROTOCOLS)}"
        )
    mechanism = settings.kafka_sasl_mechanism.strip().upper()
    sec = KafkaSecurity(
        protocol=protocol,
        sasl_mechanism=mechanism,
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        ca_location=settings.kafka_ssl_ca_location,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
        key_password=settings.kafka_ssl_key_password,
    )
    if sec.uses_sasl:
        if mechanism not in SASL_MECHANISMS:
            raise SecurityConfigError(
                f"RLSIZER_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism!r} with {protocol}: expected one of {', '.join(SASL_MECHANISMS)}"
            )
        missing = [
            name
            for name, value in (
                ("RLSIZER_KAFKA_SASL_USERNAME", sec.username),
                ("RLSIZER_KAFKA_SASL_PASSWORD[_FILE]", sec.password),
            )
            if not value
        ]
        if missing:
            raise SecurityConfigError(f"{protocol} needs {' and '.join(missing)}")
    elif mechanism or sec.username or sec.password:
        raise SecurityConfigError(
            f"SASL credentials are set but RLSIZER_KAFKA_SECURITY_PROTOCOL={protocol}: use SASL_PLAINTEXT or SASL_SSL, or unset them"
        )
    if not sec.uses_tls and (sec.ca_location or sec.certfile or sec.keyfile):
        raise SecurityConfigError(
            f"TLS files are set but RLSIZER_KAFKA_SECURITY_PROTOCOL={protocol}: use SSL or SASL_SSL, or unset them"
        )
    if bool(sec.certfile) != bool(sec.keyfile):
        raise SecurityConfigError("mutual TLS needs both RLSIZER_KAFKA_SSL_CERTFILE and RLSIZER_KAFKA_SSL_KEYFILE")
    return sec


# --- librdkafka (confluent-kafka) -----------------------------------------------------------


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """The ``security.protocol`` / ``sasl.*`` / ``ssl.*`` keys for librdkafka."""
    sec = kafka_security(settings)
    conf = {"security.protocol": sec.protocol}
    if sec.uses_sasl:
        conf |= {"sasl.mechanism": sec.sasl_mechanism, "sasl.username": sec.username, "sasl.password": sec.password}
    if sec.uses_tls:
        if sec.ca_location:
            conf["ssl.ca.location"] = sec.ca_location
        if sec.certfile:
            conf |= {"ssl.certificate.location": sec.certfile, "ssl.key.location": sec.keyfile}
            if sec.key_password:
                conf["ssl.key.password"] = sec.key_password
    return conf


def librdkafka_config(settings: Settings) -> KafkaConfig:
    """Connection settings shared by every confluent-kafka producer, consumer and admin client."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "log_level": str(settings.kafka_log_level),
        **librdkafka_security(settings),
    }


# --- aiokafka / Faust ------------------------------------------------------------------------


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying client TLS context for Kafka (``None`` without TLS); bad files raise ``SecurityConfigError``."""
    sec = kafka_security(settings)
    if not sec.uses_tls:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=sec.ca_location or None)
        if sec.certfile:
            context.load_cert_chain(sec.certfile, sec.keyfile, password=sec.key_password or None)
    except (OSError, ssl.SSLError) as exc:
        raise SecurityConfigError(
            f"Kafka TLS files (CA {sec.ca_location or 'system'}, cert {sec.certfile or '-'}): {exc}"
        ) from None
    return context


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.AIOKafkaProducer/Consumer/AdminClient`` (``bootstrap_servers`` excluded)."""
    sec = kafka_security(settings)
    kwargs: dict[str, Any] = {"security_protocol": sec.protocol}
    if sec.uses_sasl:
        kwargs |= {
            "sasl_mechanism": sec.sasl_mechanism,
            "sasl_plain_username": sec.username,
            "sasl_plain_password": sec.password,
        }
    if sec.uses_tls:
        kwargs["ssl_context"] = ssl_context(settings)
    return kwargs


# --- schema registry -------------------------------------------------------------------------


def _registry_basic_auth(settings: Settings) -> tuple[str, str] | None:
    raw = settings.registry_basic_auth
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user:
        raise SecurityConfigError("RLSIZER_REGISTRY_BASIC_AUTH[_FILE] must be 'user:password' (the value is not shown)")
    return user, password


def registry_client_config(settings: Settings) -> dict[str, str]:
    """Configuration for confluent-kafka's ``SchemaRegistryClient``."""
    conf = {"url": settings.registry_url}
    if _registry_basic_auth(settings):
        conf["basic.auth.user.info"] = settings.registry_basic_auth
    if settings.registry_ca_location:
        conf["ssl.ca.location"] = settings.registry_ca_location
    return conf


def registry_requests_kwargs(settings: Settings) -> dict[str, Any]:
    """``auth`` and ``verify`` for a plain ``requests`` call to the registry (the health probe)."""
    kwargs: dict[str, Any] = {}
    auth = _registry_basic_auth(settings)
    if auth:
        kwargs["auth"] = auth
    if settings.registry_ca_location:
        kwargs["verify"] = settings.registry_ca_location
    return kwargs


# --- S3 ----------------------------------------------------------------------------------------


def boto3_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``boto3.client("s3", ...)`` (endpoint, region, keys, CA bundle).

    Empty keys become ``None`` so boto3 falls back to its own chain (instance
    role, ``AWS_*`` variables, shared credentials file).
    """
    kwargs: dict[str, Any] = {
        "endpoint_url": settings.s3_endpoint or None,
        "region_name": settings.s3_region or None,
        "aws_access_key_id": settings.s3_access_key or None,
        "aws_secret_access_key": settings.s3_secret_key or None,
    }
    if settings.s3_ca_bundle:
        kwargs["verify"] = settings.s3_ca_bundle
    return kwargs
