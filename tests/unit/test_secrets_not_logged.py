"""Planted secrets never reach logs, output or error messages.

Unique secrets are put in the environment (Kafka SASL password, model HMAC key, S3
secret key, registry basic auth), then code paths that log or print run against
endpoints that do not answer: ``Settings`` repr, the security builders' reprs and
errors, ``rlsizer health`` through the CLI (its log lines and its table), the model
registry's repr, the schema registry client's error and the Kafka login check.
Everything captured (Python logging, and file descriptors 1 and 2 so that
librdkafka's own log lines are included) is searched for each secret.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from config.settings import Settings
from rlsizer.stack.processes import HOST, free_port


@pytest.fixture()
def secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    planted = {name: f"{name}-{uuid.uuid4().hex}" for name in ("sasl", "hmac", "s3", "registry")}
    dead = free_port()  # nothing listens here
    (tmp_path / "s3_secret").write_text(planted["s3"] + "\n")
    env = {
        "RLSIZER_KAFKA_BOOTSTRAP": f"{HOST}:{dead}",
        "RLSIZER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "RLSIZER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RLSIZER_KAFKA_SASL_USERNAME": "rlsizer",
        "RLSIZER_KAFKA_SASL_PASSWORD": planted["sasl"],
        "RLSIZER_MODEL_HMAC_KEY": planted["hmac"],
        "RLSIZER_S3_SECRET_KEY_FILE": str(tmp_path / "s3_secret"),
        "RLSIZER_S3_ENDPOINT": f"http://{HOST}:{dead}",
        "RLSIZER_REGISTRY_URL": f"http://{HOST}:{dead}",
        "RLSIZER_REGISTRY_BASIC_AUTH": f"svc:{planted['registry']}",
        "RLSIZER_DATA_DIR": str(tmp_path / "data"),
        "RLSIZER_HEALTH_INTERVAL_SECONDS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return planted


def assert_absent(text: str, planted: dict[str, str]) -> None:
    for name, secret in planted.items():
        assert secret not in text, f"the {name} secret appeared in captured output"


def test_secrets_reach_the_clients_but_not_the_logs(
    secrets: dict[str, str], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    from agents.glue.faust.credentials import faust_broker_credentials
    from config.security import (
        aiokafka_security,
        kafka_security,
        librdkafka_config,
        registry_client_config,
    )
    from models.registry import ModelRegistry
    from rlsizer.cli import main
    from schemas.registry_client import HttpSchemaRegistry
    from streams.login import kafka_login_error

    caplog.set_level(logging.DEBUG)
    settings = Settings.from_env()
    # the secrets were read and do reach the clients (so the search below is meaningful)
    assert librdkafka_config(settings)["sasl.password"] == secrets["sasl"]
    assert settings.s3_secret_key == secrets["s3"] and settings.model_hmac_key == secrets["hmac"]
    assert registry_client_config(settings)["basic.auth.user.info"].endswith(secrets["registry"])

    shown: list[str] = [
        repr(settings),
        str(settings),
        f"{settings!r}",
        repr(kafka_security(settings)),
        repr(faust_broker_credentials(settings)),
        repr(aiokafka_security(settings)["sasl_mechanism"]),
    ]
    logging.getLogger("rlsizer.test").info("settings: %r", settings)

    registry = ModelRegistry.from_settings(settings)
    shown.append(repr(registry))
    logging.getLogger("rlsizer.test").info("registry: %r", registry)

    schema_registry = HttpSchemaRegistry.from_config(registry_client_config(settings))
    with pytest.raises(Exception) as info:
        schema_registry.schema_by_id(1)
    shown.append(f"{type(info.value).__name__}: {info.value}")
    logging.getLogger("rlsizer.test").exception("registry call failed", exc_info=info.value)

    login = kafka_login_error(settings, timeout=1)
    assert login is not None
    shown.append(login)

    assert main(["health"]) == 1  # everything is unreachable: FAIL, exit 1
    out, err = capfd.readouterr()
    assert "reach_kafka" in out and "FAIL" in out  # the command did run its checks
    assert_absent("\n".join(shown), secrets)
    assert_absent(out + err, secrets)
    assert_absent(caplog.text, secrets)
    assert_absent("\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records), secrets)


def test_a_settings_parse_error_does_not_echo_a_secret_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """An unreadable secret file is reported by path, never by content."""
    from rlsizer.cli import main

    monkeypatch.setenv("RLSIZER_MODEL_HMAC_KEY_FILE", str(tmp_path / "missing"))
    assert main(["health"]) == 2
    _, err = capfd.readouterr()
    assert "RLSIZER_MODEL_HMAC_KEY_FILE" in err and "missing" in err
