from confluent_kafka.admin import AdminClient

from streams.topics import CATALOG, SCHEMAS_TOPIC


def test_stack_creates_every_topic(settings):
    topics = AdminClient(settings.kafka_config()).list_topics(timeout=10).topics
    expected = {settings.topic(spec.short_name) for spec in CATALOG} | {SCHEMAS_TOPIC}
    assert expected <= set(topics)
    assert len(topics[settings.topic("signals")].partitions) == settings.topic_partitions
    assert len(topics[settings.topic("models")].partitions) == 1
