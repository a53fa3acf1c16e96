"""Who may do what on the stack's Kafka broker: each test tries to get past TLS, SCRAM or an ACL, on the real broker
of the test session, and checks that the broker refused and nothing was written."""

from __future__ import annotations

import socket
import ssl
import stat
import struct
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_offsets import end_offsets

from ingestion.kafka_access import KafkaUser, password_file
from ingestion.stack.kafka_tls import ensure_broker_tls
from ingestion.stack.kafka_users import broker_acls, granted_acls
from ingestion.streaming.topics import (
    BID_REQUESTS_DLQ_TOPIC,
    BID_REQUESTS_TOPIC,
    IMPRESSIONS_DLQ_TOPIC,
    IMPRESSIONS_TOPIC,
    TOPICS,
)

pytestmark = pytest.mark.integration


def _end_offsets(kafka_broker, topic: str) -> dict[int, int]:
    consumer = Consumer({**kafka_broker.client_config(), "group.id": f"test-{uuid.uuid4()}"})
    try:
        return end_offsets(consumer, topic)
    finally:
        consumer.close()


def _produce(config: dict, topic: str) -> tuple[KafkaError | None, list[KafkaError]]:
    """Produce one record; the delivery report's error (None: written) and what the client reported meanwhile."""
    client_errors: list[KafkaError] = []
    delivered: list[KafkaError | None] = []
    producer = Producer(
        {**config, "message.timeout.ms": 4000, "log_level": 0, "error_cb": client_errors.append},
    )
    producer.produce(topic, f"probe {uuid.uuid4()}".encode(), on_delivery=lambda error, _: delivered.append(error))
    producer.flush(20)
    assert len(delivered) == 1
    return delivered[0], client_errors


def test_a_client_without_tls_and_login_is_refused_and_writes_nothing(kafka_broker):
    before = _end_offsets(kafka_broker, IMPRESSIONS_TOPIC.name)
    error, client_errors = _produce({"bootstrap.servers": kafka_broker.bootstrap_servers}, IMPRESSIONS_TOPIC.name)
    assert error is not None and error.code() == KafkaError._MSG_TIMED_OUT
    assert client_errors, "the client reported nothing about the refused connection"
    assert _end_offsets(kafka_broker, IMPRESSIONS_TOPIC.name) == before


def test_tls_without_a_login_and_a_wrong_password_are_refused(kafka_broker):
    config = kafka_broker.client_config(KafkaUser.SHIPPER)
    tls_only = {k: v for k, v in config.items() if not k.startswith("sasl.")} | {"security.protocol": "SSL"}
    wrong_password = config | {"sasl.password": config["sasl.password"] + "x"}
    before = _end_offsets(kafka_broker, IMPRESSIONS_TOPIC.name)

    error, _ = _produce(tls_only, IMPRESSIONS_TOPIC.name)
    assert error is not None and error.code() == KafkaError._MSG_TIMED_OUT
    error, client_errors = _produce(wrong_password, IMPRESSIONS_TOPIC.name)
    assert error is not None and error.code() == KafkaError._MSG_TIMED_OUT
    assert KafkaError._AUTHENTICATION in {e.code() for e in client_errors}, client_errors
    assert _end_offsets(kafka_broker, IMPRESSIONS_TOPIC.name) == before

    # The control: the right password writes.
    assert _produce(config, IMPRESSIONS_TOPIC.name)[0] is None


def test_the_client_checks_the_broker_certificate(kafka_broker, tmp_path):
    """A client that trusts another CA does not talk to the broker: nobody can stand in for it on the port."""
    other_ca = ensure_broker_tls(tmp_path / "other-tls").ca_certificate
    config = kafka_broker.client_config(KafkaUser.SHIPPER) | {"ssl.ca.location": str(other_ca)}
    error, client_errors = _produce(config, IMPRESSIONS_TOPIC.name)
    assert error is not None and error.code() == KafkaError._MSG_TIMED_OUT
    assert any("certificate verify failed" in e.str() for e in client_errors), client_errors


@pytest.mark.parametrize(
    ("user", "allowed", "refused"),
    [
        (KafkaUser.SHIPPER, (IMPRESSIONS_TOPIC, IMPRESSIONS_DLQ_TOPIC), (BID_REQUESTS_TOPIC, BID_REQUESTS_DLQ_TOPIC)),
        (KafkaUser.BRIDGE, (BID_REQUESTS_TOPIC, BID_REQUESTS_DLQ_TOPIC), (IMPRESSIONS_TOPIC, IMPRESSIONS_DLQ_TOPIC)),
        (KafkaUser.LANDER, (), TOPICS),
        (KafkaUser.MONITOR, (), TOPICS),
    ],
)
def test_each_user_writes_only_its_own_topics(kafka_broker, user, allowed, refused):
    config = kafka_broker.client_config(user)
    for topic in refused:
        before = _end_offsets(kafka_broker, topic.name)
        error, _ = _produce(config, topic.name)
        assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (user, topic, error)
        assert _end_offsets(kafka_broker, topic.name) == before, (user, topic)
    for topic in allowed:
        assert _produce(config, topic.name)[0] is None, (user, topic)


@pytest.mark.parametrize(
    ("user", "topic"), [(KafkaUser.SHIPPER, IMPRESSIONS_TOPIC), (KafkaUser.BRIDGE, BID_REQUESTS_TOPIC)]
)
def test_the_writers_cannot_read_even_their_own_topics(kafka_broker, user, topic):
    assert _produce(kafka_broker.client_config(), topic.name)[0] is None
    assignment = [TopicPartition(topic.name, p, 0) for p in range(topic.partitions)]
    # The control: the lander, allowed to read, gets records from the same partitions.
    records, _ = _read(kafka_broker.client_config(KafkaUser.LANDER), assignment)
    assert records > 0
    records, errors = _read(kafka_broker.client_config(user), assignment)
    assert records == 0
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED in {e.code() for e in errors}, errors


def _read(config: dict, assignment: list[TopicPartition]) -> tuple[int, list[KafkaError]]:
    """Records read from the assigned partitions within 10 s, and the errors polled; it stops at the first record
    or refused fetch. No user has a consumer group (the group is refused too): nothing is committed."""
    consumer = Consumer(
        {**config, "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False, "log_level": 0},
    )
    records, errors = 0, []
    try:
        consumer.assign(assignment)
        for _ in range(10):
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error():
                errors.append(message.error())
                if message.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    break
            else:
                records += 1
                break
    finally:
        consumer.close()
    return records, errors


def test_readers_read_but_cannot_create_topics_or_grant_themselves_more(kafka_broker):
    config = kafka_broker.client_config(KafkaUser.LANDER)
    consumer = Consumer({**config, "group.id": f"test-{uuid.uuid4()}"})
    try:
        partition = TopicPartition(IMPRESSIONS_TOPIC.name, 0)
        assert consumer.get_watermark_offsets(partition, timeout=10)[1] >= 0
    finally:
        consumer.close()

    admin = AdminClient(config)
    name = f"adx.test.{uuid.uuid4().hex[:8]}"
    [future] = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values()
    with pytest.raises(KafkaException) as raised:
        future.result()
    assert raised.value.args[0].code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    )
    wider = next(iter(granted_acls()))
    wider = type(wider)(
        wider.restype, "*", wider.resource_pattern_type, "User:lander", "*", wider.operation, wider.permission_type
    )
    [future] = admin.create_acls([wider]).values()
    with pytest.raises(KafkaException) as raised:
        future.result()
    assert raised.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_a_topic_without_acls_is_closed_to_everyone_but_admin(kafka_broker):
    name = f"adx.test.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka_broker.client_config())
    [future] = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values()
    future.result()
    for user in (KafkaUser.SHIPPER, KafkaUser.BRIDGE):
        error, _ = _produce(kafka_broker.client_config(user), name)
        assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, user
    assert _produce(kafka_broker.client_config(), name)[0] is None


def test_the_broker_holds_exactly_the_granted_acls(kafka_broker):
    admin = AdminClient(kafka_broker.client_config())
    assert set(broker_acls(admin, 10)) == granted_acls()


def test_the_controller_port_takes_only_the_broker_certificate(kafka_broker):
    """Mutual TLS: a client with the CA but no certificate of its own gets no answer from the controller; with the
    broker's certificate the same request is answered (the control)."""
    port = kafka_broker.broker.controller_port
    ca = str(kafka_broker.broker.tls_dir / "ca.pem")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _api_versions(port, ca, client_certificate=None)
    assert _api_versions(port, ca, client_certificate=str(kafka_broker.broker.tls_dir / "broker.pem"))


def test_credentials_are_private_files(kafka_broker):
    files = [password_file(kafka_broker.settings, user) for user in KafkaUser]
    files += [kafka_broker.broker.properties_file, kafka_broker.broker.tls_dir / "ca.key"]
    files.append(kafka_broker.broker.tls_dir / "broker.pem")
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    passwords = {password_file(kafka_broker.settings, user).read_text().strip() for user in KafkaUser}
    assert len(passwords) == len(KafkaUser)  # one password per user


def _api_versions(port: int, ca_file: str, client_certificate: str | None) -> bytes:
    """Send Kafka's ApiVersions request (v0) over TLS; the response's bytes, or an error if there is none."""
    context = ssl.create_default_context(cafile=ca_file)
    if client_certificate:
        context.load_cert_chain(client_certificate)
    client_id = b"adx-test"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(struct.pack(">i", len(body)) + body)
        header = tls.recv(4)
        if len(header) < 4:
            raise ConnectionError("the controller closed the connection")
        return header + tls.recv(struct.unpack(">i", header)[0])
