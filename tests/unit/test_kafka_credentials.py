"""The Kafka clients' credentials and the local broker's certificates, without a broker."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat

import pytest
from cryptography import x509

from ingestion.kafka_access import (
    KafkaCredentialsError,
    KafkaUser,
    client_config,
    java_client_properties,
    password_file,
    spark_kafka_options,
)
from ingestion.settings import Settings
from ingestion.stack import kafka_tls
from ingestion.stack.kafka_tls import BROKER_COMMON_NAME, ensure_broker_tls
from ingestion.stack.kafka_users import granted_acls, user_password


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:19092")


def test_a_client_without_a_password_file_is_told_where_it_belongs(settings):
    with pytest.raises(KafkaCredentialsError, match=f"no password for Kafka user lander in {settings.data_dir}"):
        client_config(settings, KafkaUser.LANDER)
    assert not password_file(settings, KafkaUser.LANDER).exists()  # a client never makes one up


def test_client_settings_log_in_with_the_users_password_and_trust_the_ca(settings):
    password = user_password(settings, KafkaUser.SHIPPER)
    assert stat.S_IMODE(password_file(settings, KafkaUser.SHIPPER).stat().st_mode) == 0o600
    with pytest.raises(KafkaCredentialsError, match="no Kafka CA certificate"):
        client_config(settings, KafkaUser.SHIPPER)
    ca = settings.resolved_kafka_secrets_dir / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")

    config = client_config(settings, KafkaUser.SHIPPER)
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"], config["ssl.ca.location"]) == (
        "shipper",
        password,
        str(ca),
    )
    options = spark_kafka_options(settings, KafkaUser.SHIPPER)
    assert options["kafka.sasl.jaas.config"].endswith(f'username="shipper" password="{password}";')
    assert options["kafka.ssl.truststore.location"] == str(ca)
    assert {f"kafka.{key}" for key in java_client_properties(settings, KafkaUser.SHIPPER)} == set(options)


@pytest.mark.parametrize("password", ['pass"word', "pass\\word"])
def test_a_password_that_would_break_the_jaas_string_is_refused(settings, password):
    path = password_file(settings, KafkaUser.LANDER)
    path.parent.mkdir(parents=True)
    path.write_text(password)
    (settings.resolved_kafka_secrets_dir / "ca.pem").write_text("")
    with pytest.raises(KafkaCredentialsError, match="double quote or a backslash"):
        spark_kafka_options(settings, KafkaUser.LANDER)


def test_every_user_has_its_own_generated_password(settings):
    passwords = {user_password(settings, user) for user in KafkaUser}
    assert len(passwords) == len(KafkaUser) and all(len(p) >= 40 for p in passwords)
    assert user_password(settings, KafkaUser.ADMIN) == user_password(settings, KafkaUser.ADMIN)  # kept


def test_the_broker_certificate_names_the_loopback_address_and_chains_to_the_ca(tmp_path):
    tls = ensure_broker_tls(tmp_path)
    ca = x509.load_pem_x509_certificate(tls.ca_certificate.read_bytes())
    broker, chained_ca = x509.load_pem_x509_certificates(tls.keystore.read_bytes())
    pkcs8_header = b"-----BEGIN PRIVATE KEY-----"  # pragma: allowlist secret
    assert pkcs8_header in tls.keystore.read_bytes()  # PKCS#8, the only form Kafka's PEM keystore reads
    assert chained_ca == ca
    broker.verify_directly_issued_by(ca)
    assert broker.subject.rfc4514_string() == f"CN={BROKER_COMMON_NAME}"
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    for key in (tmp_path / "ca.key", tls.keystore):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_the_broker_certificate_is_kept_then_renewed_near_its_end_under_the_same_ca(tmp_path, monkeypatch):
    first = ensure_broker_tls(tmp_path)
    keystore, ca = first.keystore.read_bytes(), first.ca_certificate.read_bytes()
    assert ensure_broker_tls(tmp_path).keystore.read_bytes() == keystore

    later = dt.datetime.now(dt.UTC) + kafka_tls.BROKER_VALIDITY - dt.timedelta(days=10)
    monkeypatch.setattr(kafka_tls, "_now", lambda: later)
    renewed = ensure_broker_tls(tmp_path)
    assert renewed.keystore.read_bytes() != keystore
    assert renewed.ca_certificate.read_bytes() == ca  # clients keep trusting it


def test_the_grants_give_each_topic_one_writer_and_the_two_readers():
    by_topic: dict[str, set[tuple[str, str]]] = {}
    for binding in granted_acls():
        by_topic.setdefault(binding.name, set()).add((binding.principal, binding.operation.name))
    assert by_topic == {
        "adx.impressions.v1": {("User:shipper", "WRITE"), ("User:lander", "READ"), ("User:monitor", "READ")},
        "adx.impressions.dlq.v1": {("User:shipper", "WRITE"), ("User:lander", "READ"), ("User:monitor", "READ")},
        "adx.bid_requests.v1": {("User:bridge", "WRITE"), ("User:lander", "READ"), ("User:monitor", "READ")},
        "adx.bid_requests.dlq.v1": {("User:bridge", "WRITE"), ("User:lander", "READ"), ("User:monitor", "READ")},
    }
