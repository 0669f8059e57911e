"""Our Kafka security config against a real tansu started with ``--authentication``.

tansu 0.6.0 can require SASL/SCRAM logins, but a SCRAM user cannot be created on
it (see docs/OPERATIONS.md, "Kafka security: what was verified on tansu"), so the
successful login is only shown against a second, unauthenticated tansu; against the
authenticating one we show that our librdkafka and aiokafka settings perform the
SCRAM exchange (the broker answers it) and that a client without credentials is
turned away. The positive SCRAM login belongs to a real Kafka cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.security import aiokafka_security
from config.settings import Settings
from rlsizer.stack.processes import HOST, ManagedProcess, free_port, spawn, tansu_binary, wait_ready
from streams.login import kafka_login_error

PASSWORD = "pw-5b9e2d71-integration"


def _tansu(log_dir: Path, *extra: str) -> tuple[ManagedProcess, int]:
    """A throwaway tansu (memory storage) on a free port; ready when its port accepts connections."""
    import socket

    port = free_port()
    url = f"tcp://{HOST}:{port}"
    proc = spawn(
        "tansu",
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            *extra,
        ],
        log_dir / f"tansu-{port}.log",
        {"RUST_LOG": "warn"},
    )

    def accepts() -> bool:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_ready(proc, accepts, 30, f"listen on {HOST}:{port}")
    return proc, port


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = _tansu(tmp_path_factory.mktemp("tansu-auth"), "--authentication")
    yield port
    proc.stop()


@pytest.fixture(scope="module")
def open_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = _tansu(tmp_path_factory.mktemp("tansu-open"))
    yield port
    proc.stop()


def scram(port: int, mechanism: str) -> Settings:
    return Settings(
        kafka_bootstrap=f"{HOST}:{port}",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="rlsizer",
        kafka_sasl_password=PASSWORD,
    )


def test_login_check_passes_on_a_broker_that_lets_us_in(open_broker: int) -> None:
    assert kafka_login_error(Settings(kafka_bootstrap=f"{HOST}:{open_broker}"), timeout=10) is None


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_exchange_reaches_the_broker_and_a_refusal_is_explained(auth_broker: int, mechanism: str) -> None:
    started = time.monotonic()
    error = kafka_login_error(scram(auth_broker, mechanism), timeout=10)
    assert error is not None and time.monotonic() - started < 5  # refused at once, not after the timeout
    assert "SASL SCRAM authentication failed" in error and "unknown-user" in error
    assert PASSWORD not in error


def test_a_client_without_credentials_is_turned_away(auth_broker: int) -> None:
    error = kafka_login_error(Settings(kafka_bootstrap=f"{HOST}:{auth_broker}"), timeout=2)
    assert error is not None and "no metadata" in error


def test_aiokafka_with_our_kwargs_attempts_scram_and_is_refused(auth_broker: int) -> None:
    """Faust's client does the SCRAM exchange with our settings; aiokafka 0.14 reports tansu's refusal poorly (KeyError)."""
    from aiokafka import AIOKafkaClient

    s = scram(auth_broker, "SCRAM-SHA-512")

    async def bootstrap() -> None:
        client = AIOKafkaClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=5000, **aiokafka_security(s))
        try:
            await asyncio.wait_for(client.bootstrap(), 8)
        finally:
            await client.close()

    with pytest.raises(Exception) as info:
        asyncio.run(bootstrap())
    assert not isinstance(info.value, asyncio.TimeoutError)
    assert PASSWORD not in str(info.value)
