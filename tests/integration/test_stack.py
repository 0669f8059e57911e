import boto3
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from rlsizer.stack.processes import StackError
from streams.topics import CATALOG, SCHEMAS_TOPIC


def test_stack_creates_every_topic(settings):
    topics = AdminClient(settings.kafka_config()).list_topics(timeout=10).topics
    expected = {settings.topic(spec.short_name) for spec in CATALOG} | {SCHEMAS_TOPIC}
    assert expected <= set(topics)
    assert len(topics[settings.topic("inputs")].partitions) == settings.topic_partitions
    assert len(topics[settings.topic("models")].partitions) == 1


def test_stack_serves_the_registry_and_the_models_bucket(stack, settings):
    assert {p.name for p in stack.processes} == {"seaweedfs", "tansu", "schema registry"}
    assert SchemaRegistryClient({"url": settings.registry_url}).get_compatibility() == "BACKWARD"
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
    )
    assert settings.s3_bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_a_second_stack_on_the_same_data_dir_is_refused(stack):
    with pytest.raises(StackError, match="in use by another stack"):
        EmbeddedStack(stack.data_dir, ports=StackPorts.free()).start()
    stack.check_alive()
