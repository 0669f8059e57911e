from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, setting_env_names


def test_defaults_are_the_embedded_endpoints():
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.registry_url == "http://127.0.0.1:8081"
    assert s.s3_endpoint == "http://127.0.0.1:8333"
    assert s.topic("signals") == "rlsizer.signals"


def test_environment_overrides_and_types():
    s = Settings.from_env(
        {
            "RLSIZER_KAFKA_BOOTSTRAP": "k:1",
            "RLSIZER_TOPIC_PARTITIONS": "12",
            "RLSIZER_TRAIN_INTERVAL_SECONDS": "60.5",
            "RLSIZER_DATA_DIR": "/tmp/x",
        }
    )
    assert (s.kafka_bootstrap, s.topic_partitions, s.train_interval_seconds, s.data_dir) == (
        "k:1",
        12,
        60.5,
        Path("/tmp/x"),
    )


def test_bad_number_names_the_variable():
    with pytest.raises(SettingsError, match="RLSIZER_TOPIC_PARTITIONS='six' is not a valid int"):
        Settings.from_env({"RLSIZER_TOPIC_PARTITIONS": "six"})


def test_secret_from_file_and_hidden_in_repr(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("s3cr3t-value\n")
    s = Settings.from_env({"RLSIZER_MODEL_HMAC_KEY_FILE": str(key_file), "RLSIZER_S3_SECRET_KEY": "other-secret"})
    assert s.model_hmac_key == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(s) and "other-secret" not in repr(s)
    assert "model_hmac_key=***" in repr(s)


def test_missing_secret_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="RLSIZER_MODEL_HMAC_KEY_FILE: cannot read"):
        Settings.from_env({"RLSIZER_MODEL_HMAC_KEY_FILE": str(tmp_path / "nope")})


def test_env_names_cover_fields():
    names = setting_env_names()
    assert "RLSIZER_KAFKA_BOOTSTRAP" in names and "RLSIZER_S3_SECRET_KEY_FILE" in names


def test_sasl_settings_reach_librdkafka_config():
    s = Settings.from_env(
        {
            "RLSIZER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RLSIZER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "RLSIZER_KAFKA_SASL_USERNAME": "u",
            "RLSIZER_KAFKA_SASL_PASSWORD": "p",
        }
    )
    conf = s.kafka_config()
    assert (
        conf["security.protocol"] == "SASL_SSL"
        and conf["sasl.mechanism"] == "SCRAM-SHA-512"
        and conf["sasl.password"] == "p"
    )


def test_to_env_rebuilds_the_same_settings(tmp_path):
    original = Settings.from_env(
        {
            "RLSIZER_TOPIC_PREFIX": "x",
            "RLSIZER_TOPIC_PARTITIONS": "3",
            "RLSIZER_DATA_DIR": str(tmp_path),
            "RLSIZER_MODEL_HMAC_KEY": "k",
        }
    )
    assert Settings.from_env(original.to_env()) == original


def test_earliest_event_time_is_an_iso_date_checked_when_read():
    assert Settings.from_env({"RLSIZER_EARLIEST_EVENT_TIME": "1985-01-01"}).earliest_event_time == "1985-01-01"
    with pytest.raises(SettingsError, match="RLSIZER_EARLIEST_EVENT_TIME='199O-01-01' is not an ISO date"):
        Settings.from_env({"RLSIZER_EARLIEST_EVENT_TIME": "199O-01-01"})
    with pytest.raises(SettingsError, match="before 1970-01-01"):
        Settings.from_env({"RLSIZER_EARLIEST_EVENT_TIME": "1969-12-31"})
