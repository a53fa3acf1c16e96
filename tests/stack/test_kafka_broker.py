"""The local Kafka broker of `adx stack`, against the real broker of the test session (the kafka_broker fixture)."""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from ingestion import stack
from ingestion.cli import main
from ingestion.settings import Settings
from ingestion.stack.kafka import SCRAM_FORMAT_MARKER, KafkaBroker, ensure_topics, parse_bootstrap
from ingestion.stack.process import PortInUseError, StackError
from ingestion.streaming.topics import IMPRESSIONS_TOPIC, SOURCE_FILE_HEADER, TOPICS, Topic


def _produce(client_config: dict, topic: str, value: bytes, headers: dict[str, bytes] | None = None) -> Message:
    """Produce one record and return it as acknowledged by the broker (with its partition and offset)."""
    delivered: list[Message] = []

    def on_delivery(error, message: Message) -> None:
        assert error is None, error
        delivered.append(message)

    producer = Producer({**client_config, "acks": "all", "enable.idempotence": True})
    producer.produce(topic, value=value, key=value[:8], headers=headers, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert len(delivered) == 1
    return delivered[0]


def _read_at(client_config: dict, topic: str, partition: int, offset: int) -> Message:
    consumer = Consumer({**client_config, "group.id": f"test-{uuid.uuid4()}"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is not None:
                assert message.error() is None, message.error()
                return message
        raise AssertionError(f"nothing read from {topic}[{partition}] at offset {offset} in 30 s")
    finally:
        consumer.close()


def _env(settings: Settings) -> dict[str, str]:
    return {
        "ADX_DATA_DIR": str(settings.data_dir),
        "ADX_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ADX_KAFKA_SECRETS_DIR": str(settings.resolved_kafka_secrets_dir),
    }


@pytest.mark.integration
def test_up_gives_a_healthy_broker_with_the_configured_topics(kafka_broker):
    [status] = stack.status(kafka_broker.settings, only=["kafka"])
    assert (status.name, status.running, status.healthy) == ("kafka", True, True)
    assert status.address == kafka_broker.bootstrap_servers
    assert set(status.topics) >= {t.name for t in TOPICS}

    admin = AdminClient(kafka_broker.client_config())
    metadata = admin.list_topics(timeout=10)
    resources = [ConfigResource(ResourceType.TOPIC, t.name) for t in TOPICS]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources, request_timeout=10).items()}
    for topic in TOPICS:
        assert len(metadata.topics[topic.name].partitions) == topic.partitions, topic.name
        assert int(configs[topic.name]["retention.ms"].value) == topic.retention_ms, topic.name
    # Only ensure_topics creates topics: a typo does not make a new one.
    assert configs[IMPRESSIONS_TOPIC.name]["cleanup.policy"].value == "delete"
    assert (
        admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")])[ConfigResource(ResourceType.BROKER, "1")]
        .result()["auto.create.topics.enable"]
        .value
        == "false"
    )


@pytest.mark.integration
def test_a_produced_record_is_consumed_by_a_consumer_group(kafka_broker):
    value = f"impression {uuid.uuid4()}".encode()
    sent = _produce(
        kafka_broker.client_config(), IMPRESSIONS_TOPIC.name, value, headers={SOURCE_FILE_HEADER: b"web-1.jsonl"}
    )

    consumer = Consumer(
        {
            **kafka_broker.client_config(),
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([IMPRESSIONS_TOPIC.name])
        deadline = time.monotonic() + 60
        received = None
        while received is None and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is not None and message.error() is None and message.value() == value:
                received = message
        assert received is not None, "the record was not consumed within 60 s"
        assert (received.partition(), received.offset()) == (sent.partition(), sent.offset())
        assert dict(received.headers()) == {SOURCE_FILE_HEADER: b"web-1.jsonl"}
        consumer.commit(received, asynchronous=False)  # the group coordinator works on a single broker
    finally:
        consumer.close()


@pytest.mark.integration
def test_up_again_is_a_no_op(kafka_broker):
    pid = kafka_broker.broker.pid()
    started = time.monotonic()
    result = stack.up(kafka_broker.settings, only=["kafka"])
    assert time.monotonic() - started < 5
    assert kafka_broker.broker.pid() == pid
    assert [s.pid for s in result.services] == [pid]
    assert [(t.name, t.action) for t in result.topics] == [(t.name, "exists") for t in TOPICS]


@pytest.mark.integration
def test_down_stops_the_broker_and_a_restart_keeps_the_records(kafka_broker):
    settings = kafka_broker.settings
    broker = kafka_broker.broker
    value = f"before restart {uuid.uuid4()}".encode()
    sent = _produce(kafka_broker.client_config(), IMPRESSIONS_TOPIC.name, value)
    pid = broker.pid()
    assert pid is not None
    try:
        assert stack.down(settings, only=["kafka"]) == [("kafka", True)]  # a controlled shutdown, no SIGKILL
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not broker.process.pid_file.exists()
        [status] = stack.status(settings, only=["kafka"])
        assert (status.running, status.healthy, status.pid) == (False, False, None)
        result = CliRunner().invoke(main, ["stack", "status", "kafka"], env=_env(settings))
        assert result.exit_code == 1, result.output
        assert stack.down(settings, only=["kafka"]) == [("kafka", True)]  # down twice: nothing to do
    finally:
        broker.start()

    assert broker.pid() not in (None, pid)
    assert _read_at(kafka_broker.client_config(), IMPRESSIONS_TOPIC.name, sent.partition(), sent.offset()).value() == (
        value
    )


@pytest.mark.integration
def test_ensure_topics_fixes_retention_and_refuses_another_partition_count(kafka_broker):
    name = f"adx.test.{uuid.uuid4().hex[:8]}"
    settings = kafka_broker.settings
    [created] = ensure_topics(settings, [Topic(name, partitions=2, retention_ms=60_000, source="impressions")])
    assert created.action == "created"

    [updated] = ensure_topics(settings, [Topic(name, partitions=2, retention_ms=120_000, source="impressions")])
    assert updated.action == "retention updated"
    admin = AdminClient(kafka_broker.client_config())
    resource = ConfigResource(ResourceType.TOPIC, name)
    assert admin.describe_configs([resource])[resource].result()["retention.ms"].value == "120000"

    with pytest.raises(StackError, match=f"topic {name} has 2 partitions, but .* says 3"):
        ensure_topics(settings, [Topic(name, partitions=3, retention_ms=120_000, source="impressions")])


@pytest.mark.integration
def test_cli_up_and_status_on_a_running_broker(kafka_broker):
    runner = CliRunner()
    env = _env(kafka_broker.settings)
    up = runner.invoke(main, ["stack", "up", "kafka"], env=env)
    assert up.exit_code == 0, up.output
    assert kafka_broker.bootstrap_servers in up.output
    assert all(t.name in up.output for t in TOPICS)

    status = runner.invoke(main, ["stack", "status", "kafka"], env=env)
    assert status.exit_code == 0, status.output
    assert "kafka" in status.output and str(kafka_broker.broker.pid()) in status.output


@pytest.mark.integration
def test_a_broker_that_exits_at_start_is_reported_with_its_log(tmp_path):
    """A data folder formatted for another node: the broker exits at once, and start() says so with its log."""
    settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}")
    broker = KafkaBroker(settings)
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("version=1\ncluster.id=bQ5v0hNDRMGBmNp8Dm2dJg\nnode.id=7\n")
    (broker.home / SCRAM_FORMAT_MARKER).touch()
    with pytest.raises(StackError, match="exited") as raised:
        broker.start(timeout=60)
    assert "last lines of" in str(raised.value) and "Stored node id 7" in str(raised.value)
    assert broker.pid() is None


def test_start_refuses_a_port_taken_by_another_process(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        broker = KafkaBroker(Settings(data_dir=tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{port}"))
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is in use by another process"):
            broker.start()
    assert not broker.process.pid_file.exists()


def test_status_of_a_stack_that_is_not_running(tmp_path):
    settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}")
    [status] = stack.status(settings, only=["kafka"])
    assert (status.name, status.running, status.healthy, status.detail) == ("kafka", False, False, "stopped")
    result = CliRunner().invoke(main, ["stack", "status", "kafka"], env=_env(settings))
    assert result.exit_code == 1
    assert "stopped" in result.output


@pytest.mark.parametrize("servers", ["kafka.example.com:9092", "127.0.0.1:9092,127.0.0.1:9093", "127.0.0.1"])
def test_the_local_broker_runs_on_one_loopback_address(servers):
    with pytest.raises(StackError, match="ADX_KAFKA_BOOTSTRAP_SERVERS"):
        parse_bootstrap(servers)
    assert parse_bootstrap("localhost:19092") == ("127.0.0.1", 19092)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
