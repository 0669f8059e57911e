import dataclasses
import uuid

from confluent_kafka.admin import AdminClient

from rlsizer.cli import main
from streams.topics import CATALOG


def test_topics_create_is_idempotent(settings, monkeypatch, capsys):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RLSIZER_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("RLSIZER_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("RLSIZER_TOPIC_PARTITIONS", "3")
    assert main(["topics", "create"]) == 0
    assert f"created {len(CATALOG)} topic(s)" in capsys.readouterr().out
    assert main(["topics", "create"]) == 0
    assert "none (all existed)" in capsys.readouterr().out
    topics = AdminClient(settings.kafka_config()).list_topics(timeout=10).topics
    s = dataclasses.replace(settings, topic_prefix=prefix)
    assert len(topics[s.topic("inputs")].partitions) == 3
    assert main(["topics", "list"]) == 0
    assert "MISSING" not in capsys.readouterr().out
