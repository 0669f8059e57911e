"""The embedded registry through confluent-kafka's standard SchemaRegistryClient and plain HTTP."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from rlsizer.registry.server import CONTENT_TYPE
from rlsizer.stack.embedded import start_registry
from rlsizer.stack.processes import free_port

pytestmark = pytest.mark.integration


def record(name: str, *fields: dict) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "test", "fields": list(fields)})


A = {"name": "a", "type": "string"}
B_DEFAULT = {"name": "b", "type": "int", "default": 0}
B_REQUIRED = {"name": "b", "type": "int"}


def subject() -> str:
    return f"test-{uuid.uuid4().hex[:12]}-value"


@pytest.fixture
def client(settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.registry_url})


def post(url: str, body: dict) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": CONTENT_TYPE}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], json.loads(exc.read())


def test_register_get_latest_list(client):
    s, other = subject(), subject()
    v1 = record("Reg", A)
    first = client.register_schema(s, Schema(v1, "AVRO"))
    assert client.register_schema(other, Schema(json.dumps(json.loads(v1), indent=2), "AVRO")) == first
    assert json.loads(client.get_schema(first).schema_str) == json.loads(v1)
    v2 = record("Reg", A, B_DEFAULT)
    second = client.register_schema(s, Schema(v2, "AVRO"))
    assert second != first
    latest = client.get_latest_version(s)
    assert (latest.version, latest.schema_id, json.loads(latest.schema.schema_str)) == (2, second, json.loads(v2))
    assert client.get_version(s, 1).schema_id == first
    assert client.get_versions(s) == [1, 2]
    assert {s, other} <= set(client.get_subjects())
    assert client.lookup_schema(s, Schema(v1, "AVRO")).version == 1
    assert sorted((v.subject, v.version) for v in client.get_schema_versions(first)) == sorted([(s, 1), (other, 1)])


def test_the_schema_list_filters_by_prefix_latest_and_deleted_like_confluents(settings, client):
    prefix = f"list-{uuid.uuid4().hex[:8]}"
    a, b = f"{prefix}-a-value", f"{prefix}-b-value"
    first = client.register_schema(a, Schema(record("L", A), "AVRO"))
    second = client.register_schema(a, Schema(record("L", A, B_DEFAULT), "AVRO"))
    other = client.register_schema(b, Schema(record("M", A), "AVRO"))

    def listed(query: str) -> list[tuple[str, int, int]]:
        with urllib.request.urlopen(f"{settings.registry_url}/schemas?subjectPrefix={prefix}{query}", timeout=10) as r:
            return [(s["subject"], s["version"], s["id"]) for s in json.loads(r.read())]

    assert listed("") == [(a, 1, first), (a, 2, second), (b, 1, other)]
    assert listed("&latestOnly=true") == [(a, 2, second), (b, 1, other)]
    assert listed("&offset=1&limit=1") == [(a, 2, second)]
    client.delete_subject(b)
    assert listed("") == [(a, 1, first), (a, 2, second)]
    assert listed("&deleted=true") == [(a, 1, first), (a, 2, second), (b, 1, other)]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{settings.registry_url}/schemas?limit=x", timeout=10)
    assert err.value.code == 400 and json.loads(err.value.read())["error_code"] == 40002


def test_a_fresh_client_gets_the_same_id_for_the_same_schema(settings, client):
    s = subject()
    text = record("Again", A)
    first = client.register_schema(s, Schema(text, "AVRO"))
    fresh = SchemaRegistryClient({"url": settings.registry_url})  # no cache
    assert fresh.register_schema(s, Schema(text, "AVRO")) == first
    assert fresh.get_versions(s) == [1]


def test_incompatible_change_is_refused_with_409_and_standard_body(settings, client):
    s = subject()
    client.register_schema(s, Schema(record("Compat", A), "AVRO"))
    bad = record("Compat", A, B_REQUIRED)
    assert client.test_compatibility(s, Schema(bad, "AVRO")) is False
    assert client.test_compatibility(s, Schema(record("Compat", A, B_DEFAULT), "AVRO")) is True
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(s, Schema(bad, "AVRO"))
    assert (err.value.http_status_code, err.value.error_code) == (409, 409)
    status, content_type, body = post(f"{settings.registry_url}/subjects/{s}/versions", {"schema": bad})
    assert (status, content_type) == (409, CONTENT_TYPE)
    assert body["error_code"] == 409 and "b" in body["message"] and set(body) == {"error_code", "message"}
    assert client.get_versions(s) == [1]


def test_compatibility_config_global_and_per_subject(client):
    s = subject()
    assert client.get_compatibility() == "BACKWARD"
    with pytest.raises(SchemaRegistryError) as err:
        client.get_compatibility(s)
    assert err.value.error_code == 40408
    client.register_schema(s, Schema(record("Cfg", A), "AVRO"))
    assert client.set_compatibility(s, "NONE") == {"compatibility": "NONE"}
    assert client.get_compatibility(s) == "NONE"
    assert client.register_schema(s, Schema(record("Cfg", A, B_REQUIRED), "AVRO")) > 0
    assert client.get_compatibility() == "BACKWARD"
    with pytest.raises(SchemaRegistryError) as err:
        client.set_compatibility(s, "SIDEWAYS")
    assert err.value.error_code == 42203


def test_errors_use_confluent_codes(client):
    s = subject()
    with pytest.raises(SchemaRegistryError) as err:
        client.get_latest_version(s)
    assert (err.value.http_status_code, err.value.error_code) == (404, 40401)
    client.register_schema(s, Schema(record("Err", A), "AVRO"))
    with pytest.raises(SchemaRegistryError) as err:
        client.get_version(s, 99)
    assert err.value.error_code == 40402
    with pytest.raises(SchemaRegistryError) as err:
        client.get_schema(987654)
    assert err.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(s, Schema('{"type": "record", "name": "NoFields"}', "AVRO"))
    assert err.value.error_code == 42201
    with pytest.raises(SchemaRegistryError) as err:
        client.lookup_schema(s, Schema(record("Other", A), "AVRO"))
    assert err.value.error_code == 40403


def test_delete_soft_then_permanent(client):
    s = subject()
    schema_id = client.register_schema(s, Schema(record("Del", A), "AVRO"))
    with pytest.raises(SchemaRegistryError) as err:
        client.delete_subject(s, permanent=True)
    assert err.value.error_code == 40405
    assert client.delete_subject(s) == [1]
    assert s not in client.get_subjects()
    for again, code in ((lambda: client.delete_subject(s), 40404), (lambda: client.delete_version(s, 1), 40406)):
        with pytest.raises(SchemaRegistryError) as err:  # Confluent's answers to a second soft delete
            again()
        assert err.value.error_code == code and "was soft deleted" in str(err.value)
    with pytest.raises(SchemaRegistryError) as err:
        client.delete_version(s, 7)
    assert err.value.error_code == 40402
    assert client.get_schema(schema_id).schema_str  # ids stay readable for old messages
    assert client.delete_subject(s, permanent=True) == [1]
    assert client.register_schema(s, Schema(record("Del", A, B_REQUIRED), "AVRO")) != schema_id


def test_concurrent_registration_of_one_schema_gets_one_id(settings):
    s, text, n = subject(), record("Race", A, {"name": "c", "type": "double"}), 6
    barrier, ids, errors = threading.Barrier(n), [], []

    def register() -> None:
        client = SchemaRegistryClient({"url": settings.registry_url})
        barrier.wait(5)
        try:
            ids.append(client.register_schema(s, Schema(text, "AVRO")))
            ids.append(client.register_schema(f"{s}-twin", Schema(text, "AVRO")))
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert len(ids) == 2 * n and len(set(ids)) == 1
    assert SchemaRegistryClient({"url": settings.registry_url}).get_versions(s) == [1]


def test_ids_survive_a_restart_and_a_second_registry_agrees(settings, client, tmp_path: Path):
    s = subject()
    text = record("Durable", A)
    schema_id = client.register_schema(s, Schema(text, "AVRO"))
    client.set_compatibility(s, "FULL")
    port = free_port()
    second = start_registry(port=port, kafka_bootstrap=settings.kafka_bootstrap, log_dir=tmp_path, timeout=30)
    try:
        other = SchemaRegistryClient({"url": f"http://127.0.0.1:{port}"})
        assert other.register_schema(s, Schema(text, "AVRO")) == schema_id
        assert json.loads(other.get_schema(schema_id).schema_str) == json.loads(text)
        assert other.get_compatibility(s) == "FULL"
        assert other.get_latest_version(s).version == 1
        # a schema new to both, registered on the second, is never given the same id by the first
        on_second = other.register_schema(subject(), Schema(record("FromSecond", A), "AVRO"))
        on_first = client.register_schema(subject(), Schema(record("FromFirst", A), "AVRO"))
        assert on_first != on_second
        assert json.loads(client.get_schema(on_second).schema_str)["name"] == "FromSecond"
    finally:
        second.stop()
    assert second.popen.returncode is not None


def test_the_server_refuses_to_start_on_a_taken_port(settings, tmp_path: Path):
    import subprocess

    port = int(settings.registry_url.rsplit(":", 1)[1])
    done = subprocess.run(
        [sys.executable, "-m", "rlsizer.registry.server", "--bootstrap", settings.kafka_bootstrap, "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert str(port) in done.stderr and "Traceback" not in done.stderr
