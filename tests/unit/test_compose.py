"""docker-compose.yml cannot be run here (no Docker engine): check what can be checked."""

from __future__ import annotations

from pathlib import Path

import yaml

from config.settings import setting_env_names

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_items(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_rlsizer_variable_is_a_known_setting():
    known = setting_env_names()
    used = {
        name
        for service in _compose()["services"].values()
        for name in _env_items(service)
        if name.startswith("RLSIZER_")
    }
    assert used, "compose sets no RLSIZER_ variable at all"
    assert used <= known, f"unknown settings in docker-compose.yml: {sorted(used - known)}"


def test_kafka_is_three_kraft_brokers_with_replication_three():
    services = _compose()["services"]
    brokers = [s for name, s in services.items() if name.startswith("kafka-")]
    assert len(brokers) == 3
    for broker in brokers:
        env = _env_items(broker)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert "healthcheck" in broker


def test_public_images_are_pinned():
    for name, service in _compose()["services"].items():
        image = service.get("image", "")
        if image and not image.startswith("rlsizer:"):
            assert ":" in image and not image.endswith(":latest"), f"{name} image {image!r} is not pinned"


def test_secrets_come_from_files_not_inline():
    compose = _compose()
    for name, service in compose["services"].items():
        env = _env_items(service)
        for key in env:
            if key.startswith("RLSIZER_") and ("SECRET" in key or "HMAC" in key or "PASSWORD" in key):
                assert key.endswith("_FILE"), f"{name} sets secret {key} inline"
    assert set(compose["secrets"]) >= {"s3_secret_key", "model_hmac_key"}


def test_each_worker_replica_has_its_own_id():
    worker = _compose()["services"]["worker"]
    command = " ".join(worker["command"])
    assert worker["deploy"]["replicas"] > 1
    assert "--id" in command and "$$HOSTNAME" in command, command  # the default id would be shared by all


def test_the_monitor_runs_beside_workers_and_trainer_on_their_state_and_is_scraped():
    services = _compose()["services"]
    monitor = services["monitor"]
    assert monitor["command"] == ["rlsizer", "monitor"]
    mounts = {
        name: {v for v in services[name]["volumes"] if v.endswith(":/var/lib/rlsizer")}
        for name in ("worker", "trainer", "monitor")
    }
    assert len(set.union(*mounts.values())) == 1, mounts  # model caches + trainer status in one data dir
    port = _env_items(monitor)["RLSIZER_MONITOR_WEB_PORT"]
    assert _env_items(monitor)["RLSIZER_MONITOR_WEB_HOST"] == "0.0.0.0"
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job.get("static_configs", []) for t in c["targets"]}
    assert f"monitor:{port}" in targets
