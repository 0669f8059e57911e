"""config.security: each protocol's configuration is accepted by the real client libraries.

Every builder's output is handed to the library that consumes it (librdkafka via a
confluent-kafka ``Producer``, ``aiokafka.AIOKafkaClient``, Faust's own credential
translation, ``SchemaRegistryClient``, ``boto3.client``): those constructors reject
unknown keys, unknown mechanisms, missing TLS contexts and unreadable certificate
files, so a wrong key name or value fails here, not in production. No client
connects anywhere (the bootstrap port is closed and nothing is polled).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from agents.glue.faust.credentials import faust_broker_credentials
from config.security import (
    SecurityConfigError,
    aiokafka_security,
    boto3_client_kwargs,
    kafka_security,
    librdkafka_config,
    registry_client_config,
    registry_requests_kwargs,
    ssl_context,
)
from config.settings import Settings
from rlsizer.stack.processes import free_port

PASSWORD = "pw-7c1f0b2e-unit"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A throwaway CA, and a client certificate/key it signed (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rlsizer-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=rlsizer-worker",
    )
    run(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.pem",
        "-days",
        "2",
    )
    return {"ca": str(d / "ca.pem"), "client": str(d / "client.pem"), "key": str(d / "client.key")}


def settings_for(
    protocol: str, pki: dict[str, str] | None = None, mechanism: str = "SCRAM-SHA-512", **extra: Any
) -> Settings:
    values: dict[str, Any] = {"kafka_bootstrap": f"127.0.0.1:{free_port()}", "kafka_security_protocol": protocol}
    if "SASL" in protocol:
        values |= {"kafka_sasl_mechanism": mechanism, "kafka_sasl_username": "rlsizer", "kafka_sasl_password": PASSWORD}
    if "SSL" in protocol and pki is not None:
        values |= {
            "kafka_ssl_ca_location": pki["ca"],
            "kafka_ssl_certfile": pki["client"],
            "kafka_ssl_keyfile": pki["key"],
        }
    return Settings(**(values | extra))


def librdkafka_accepts(conf: dict[str, str]) -> None:
    """Constructing a producer validates every key and loads the TLS files; nothing is polled."""
    producer = Producer({**conf, "log_level": 0})
    producer.flush(0)


def aiokafka_accepts(kwargs: dict[str, Any]) -> None:
    from aiokafka import AIOKafkaClient

    async def build() -> None:
        AIOKafkaClient(bootstrap_servers="127.0.0.1:1", **kwargs)  # validates, does not connect

    asyncio.run(build())


# --- librdkafka ---------------------------------------------------------------------------------


def test_plaintext_is_exactly_bootstrap_and_protocol() -> None:
    s = settings_for("PLAINTEXT")
    conf = librdkafka_config(s)
    assert conf == {"bootstrap.servers": s.kafka_bootstrap, "log_level": "6", "security.protocol": "PLAINTEXT"}
    assert s.kafka_config() == conf  # every producer/consumer/admin goes through here
    librdkafka_accepts(conf)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_plaintext_carries_mechanism_and_credentials(mechanism: str) -> None:
    conf = librdkafka_config(settings_for("SASL_PLAINTEXT", mechanism=mechanism.lower()))
    assert conf["security.protocol"] == "SASL_PLAINTEXT"
    assert (conf["sasl.mechanism"], conf["sasl.username"], conf["sasl.password"]) == (mechanism, "rlsizer", PASSWORD)
    assert not any(k.startswith("ssl.") for k in conf)
    librdkafka_accepts(conf)


def test_librdkafka_itself_rejects_what_we_must_not_produce() -> None:
    """The acceptance check above can fail: librdkafka refuses a bad mechanism and a missing CA file."""
    with pytest.raises(KafkaException):
        librdkafka_accepts(
            {
                "bootstrap.servers": "127.0.0.1:1",
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-999",
            }
        )
    with pytest.raises(KafkaException):
        librdkafka_accepts(
            {"bootstrap.servers": "127.0.0.1:1", "security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"}
        )


def test_ssl_with_ca_and_client_certificate(pki: dict[str, str]) -> None:
    conf = librdkafka_config(settings_for("SSL", pki))
    assert conf["security.protocol"] == "SSL"
    assert (conf["ssl.ca.location"], conf["ssl.certificate.location"], conf["ssl.key.location"]) == (
        pki["ca"],
        pki["client"],
        pki["key"],
    )
    assert not any(k.startswith("sasl.") for k in conf)
    librdkafka_accepts(conf)


def test_sasl_ssl_has_both_halves(pki: dict[str, str]) -> None:
    conf = librdkafka_config(settings_for("SASL_SSL", pki, mechanism="SCRAM-SHA-256"))
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-256" and conf["ssl.ca.location"] == pki["ca"]
    librdkafka_accepts(conf)


def test_ssl_without_ca_uses_the_system_store() -> None:
    conf = librdkafka_config(settings_for("SSL"))
    assert conf["security.protocol"] == "SSL" and "ssl.ca.location" not in conf
    context = ssl_context(settings_for("SSL"))
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# --- aiokafka / Faust ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_aiokafka_kwargs_are_accepted(protocol: str, pki: dict[str, str]) -> None:
    kwargs = aiokafka_security(settings_for(protocol, pki))
    assert kwargs["security_protocol"] == protocol
    assert ("ssl_context" in kwargs) == ("SSL" in protocol)
    assert ("sasl_plain_password" in kwargs) == ("SASL" in protocol)
    aiokafka_accepts(kwargs)


@pytest.mark.parametrize("protocol", ["SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_faust_credentials_translate_to_the_same_aiokafka_settings(protocol: str) -> None:
    """Faust derives SASL_PLAINTEXT vs SASL_SSL from whether a TLS context is given: check what it makes of ours."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    s = settings_for(protocol)
    ours = aiokafka_security(s)
    faust_view = credentials_to_aiokafka_auth(faust_broker_credentials(s))
    assert faust_view["security_protocol"] == protocol
    if "SASL" in protocol:
        assert (faust_view["sasl_mechanism"], faust_view["sasl_plain_username"], faust_view["sasl_plain_password"]) == (
            ours["sasl_mechanism"],
            ours["sasl_plain_username"],
            ours["sasl_plain_password"],
        )
    assert (faust_view.get("ssl_context") is not None) == ("SSL" in protocol)
    aiokafka_accepts({k: v for k, v in faust_view.items()})


def test_faust_credentials_repr_hides_the_password() -> None:
    assert PASSWORD not in repr(faust_broker_credentials(settings_for("SASL_SSL")))
    assert faust_broker_credentials(settings_for("PLAINTEXT")) is None


def test_client_certificate_is_loaded_into_the_tls_context(pki: dict[str, str], tmp_path: Path) -> None:
    assert ssl_context(settings_for("SSL", pki)) is not None
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    with pytest.raises(SecurityConfigError, match="Kafka TLS files"):
        ssl_context(settings_for("SSL", pki, kafka_ssl_certfile=str(broken)))


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kafka_security_protocol": "TLS"}, "expected one of PLAINTEXT"),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "GSSAPI",
                "kafka_sasl_username": "u",
                "kafka_sasl_password": PASSWORD,
            },
            "RLSIZER_KAFKA_SASL_MECHANISM",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "SCRAM-SHA-512",
                "kafka_sasl_username": "u",
            },
            "RLSIZER_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "u", "kafka_sasl_password": PASSWORD},
            "use SASL_PLAINTEXT or SASL_SSL",
        ),
        ({"kafka_ssl_ca_location": "/etc/ca.pem"}, "use SSL or SASL_SSL"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/etc/c.pem"}, "RLSIZER_KAFKA_SSL_KEYFILE"),
    ],
)
def test_inconsistent_settings_fail_with_the_variable_named_and_no_secret(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SecurityConfigError, match=message) as info:
        kafka_security(Settings(**overrides))
    assert PASSWORD not in str(info.value)


def test_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "kafka").write_text(PASSWORD + "\n")
    (tmp_path / "registry").write_text("svc:" + PASSWORD)
    s = Settings.from_env(
        {
            "RLSIZER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "RLSIZER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "RLSIZER_KAFKA_SASL_USERNAME": "rlsizer",
            "RLSIZER_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "kafka"),
            "RLSIZER_REGISTRY_BASIC_AUTH_FILE": str(tmp_path / "registry"),
        }
    )
    assert librdkafka_config(s)["sasl.password"] == PASSWORD
    assert registry_requests_kwargs(s)["auth"] == ("svc", PASSWORD)
    assert PASSWORD not in repr(s) and PASSWORD not in repr(kafka_security(s))


# --- schema registry and S3 ------------------------------------------------------------------------


def test_registry_config_with_basic_auth_and_ca(pki: dict[str, str]) -> None:
    s = Settings(
        registry_url="https://registry.example:8081",
        registry_basic_auth=f"svc:{PASSWORD}",
        registry_ca_location=pki["ca"],
    )
    conf = registry_client_config(s)
    assert conf == {
        "url": "https://registry.example:8081",
        "basic.auth.user.info": f"svc:{PASSWORD}",
        "ssl.ca.location": pki["ca"],
    }
    client = SchemaRegistryClient(conf)  # rejects unknown keys; does not connect
    assert client._rest_client.auth == ("svc", PASSWORD)
    assert registry_requests_kwargs(s) == {"auth": ("svc", PASSWORD), "verify": pki["ca"]}


def test_registry_without_auth_is_just_the_url() -> None:
    assert registry_client_config(Settings()) == {"url": Settings().registry_url}
    assert registry_requests_kwargs(Settings()) == {}


def test_malformed_registry_basic_auth_is_refused_without_echoing_it() -> None:
    with pytest.raises(SecurityConfigError, match="user:password") as info:
        registry_client_config(Settings(registry_basic_auth=PASSWORD))
    assert PASSWORD not in str(info.value)


def test_boto3_kwargs_build_a_client_with_our_keys(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    s = Settings(
        s3_endpoint="https://s3.example:9000",
        s3_access_key="AKIA-TEST",
        s3_secret_key=PASSWORD,
        s3_ca_bundle=str(bundle),
    )
    kwargs = boto3_client_kwargs(s)
    assert kwargs["verify"] == str(bundle)
    client = boto3.client("s3", **kwargs)
    creds = client._request_signer._credentials
    assert (client.meta.endpoint_url, creds.access_key, creds.secret_key) == (
        "https://s3.example:9000",
        "AKIA-TEST",
        PASSWORD,
    )


def test_boto3_empty_keys_defer_to_the_aws_chain() -> None:
    kwargs = boto3_client_kwargs(Settings(s3_access_key="", s3_secret_key="", s3_endpoint=""))
    assert (
        kwargs["aws_access_key_id"] is None
        and kwargs["aws_secret_access_key"] is None
        and kwargs["endpoint_url"] is None
    )
    assert "verify" not in kwargs
