"""How every Kafka client of the warehouse connects: TLS to the broker, then SCRAM-SHA-512 as one of the users
below, each allowed only what its job needs (the stack's broker grants it: ingestion/stack/kafka_users.py).

A client reads its credentials from `settings.resolved_kafka_secrets_dir`:

    ca.pem            the certificate authority the broker's certificate must chain to (the hostname is checked)
    <user>.password   the SCRAM password of each user (mode 0600)

`adx stack up kafka` writes them for its broker; against another cluster, put that cluster's CA and passwords there.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from ingestion.settings import Settings

SECURITY_PROTOCOL = "SASL_SSL"
SASL_MECHANISM = "SCRAM-SHA-512"
CA_FILE_NAME = "ca.pem"


class KafkaUser(StrEnum):
    ADMIN = "admin"  # creates topics, users and ACLs; the broker's own inter-broker login
    SHIPPER = "shipper"  # writes the impression topics
    BRIDGE = "bridge"  # writes the bid-request topics
    LANDER = "lander"  # reads the topics into the raw tables
    MONITOR = "monitor"  # reads the topics for the topic monitor; end offsets for the exporter's lag


class KafkaCredentialsError(RuntimeError):
    pass


def password_file(settings: Settings, user: KafkaUser) -> Path:
    return settings.resolved_kafka_secrets_dir / f"{user.value}.password"


def ca_file(settings: Settings) -> Path:
    return settings.resolved_kafka_secrets_dir / CA_FILE_NAME


def kafka_password(settings: Settings, user: KafkaUser) -> str:
    """The user's password. Clients never generate one: a made-up password would only fail later, and less clearly."""
    path = password_file(settings, user)
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        password = ""
    if not password:
        raise KafkaCredentialsError(
            f"no password for Kafka user {user.value} in {path}: `adx stack up kafka` writes it for the local broker"
        )
    check_password(password)
    return password


def check_password(password: str) -> None:
    """A quote or backslash would end the JAAS string Java clients (Spark) read the password from."""
    if '"' in password or "\\" in password:
        raise KafkaCredentialsError("a Kafka password must not contain a double quote or a backslash")


def client_config(settings: Settings, user: KafkaUser) -> dict[str, Any]:
    """librdkafka (confluent-kafka) settings of a client logged in as `user`."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": SECURITY_PROTOCOL,
        "sasl.mechanism": SASL_MECHANISM,
        "sasl.username": user.value,
        "sasl.password": kafka_password(settings, user),
        "ssl.ca.location": str(_existing_ca_file(settings)),
    }


def java_client_properties(settings: Settings, user: KafkaUser) -> dict[str, str]:
    """The Java client's settings for `user` (Kafka's own tools; Spark's source takes them prefixed `kafka.`)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": SECURITY_PROTOCOL,
        "sasl.mechanism": SASL_MECHANISM,
        "sasl.jaas.config": scram_jaas(user, kafka_password(settings, user)),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(_existing_ca_file(settings)),
    }


def scram_jaas(user: KafkaUser, password: str) -> str:
    """The JAAS line of a Java client (or the broker's own login) as `user` with SCRAM."""
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user.value}" password="{password}";'


def spark_kafka_options(settings: Settings, user: KafkaUser) -> dict[str, str]:
    """Options of Spark's Kafka source for `user`. The password sits in the JAAS string; Spark redacts option values
    that contain "password" from plans and logs."""
    return {f"kafka.{key}": value for key, value in java_client_properties(settings, user).items()}


def _existing_ca_file(settings: Settings) -> Path:
    path = ca_file(settings)
    if not path.is_file():
        raise KafkaCredentialsError(
            f"no Kafka CA certificate at {path}: `adx stack up kafka` writes the local broker's there"
        )
    return path
