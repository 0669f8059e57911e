import json

from rlsizer.cli import main


def _env(monkeypatch, settings):
    for key, value in {
        "RLSIZER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "RLSIZER_REGISTRY_URL": settings.registry_url,
        "RLSIZER_S3_ENDPOINT": settings.s3_endpoint,
        "RLSIZER_DATA_DIR": str(settings.data_dir),
    }.items():
        monkeypatch.setenv(key, value)


def test_health_json_reports_every_check_against_the_real_stack(settings, monkeypatch, capsys):
    _env(monkeypatch, settings)
    main(["health", "--json"])
    report = json.loads(capsys.readouterr().out)
    by_check = {c["check"]: c for c in report["checks"]}
    assert {
        "reach_kafka",
        "reach_s3",
        "reach_registry",
        "disk_space",
        "data_freshness",
        "consumer_lag",
        "model_freshness",
        "model_integrity",
        "training_activity",
    } <= set(by_check)
    for reach in ("reach_kafka", "reach_s3", "reach_registry"):
        assert by_check[reach]["status"] == "OK", by_check[reach]


def test_health_reports_unreachable_s3_as_fail(settings, monkeypatch, capsys):
    from rlsizer.stack.processes import free_port

    _env(monkeypatch, settings)
    monkeypatch.setenv("RLSIZER_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert main(["health"]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("FAIL") and "reach_s3" in line for line in out.splitlines())
