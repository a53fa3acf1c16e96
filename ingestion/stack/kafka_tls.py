"""The local broker's TLS certificates: a certificate authority of its own and a broker certificate it signs.

Both live in `<stack_dir>/kafka/tls` (keys mode 0600). The broker reads PEM files directly (ssl.keystore.type=PEM),
so no keytool and no keystore password are involved. The broker certificate names localhost and 127.0.0.1 (clients
check the name) and serves both sides of TLS: the broker's listener, and the broker's own client certificate on the
controller listener, which requires one (mutual TLS), so only this broker can talk to its controller.

A production cluster has certificates from the organisation's CA; clients only need its ca.pem.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ingestion.secret_files import write_private

BROKER_COMMON_NAME = "adx-kafka-broker"
# The principal a client certificate of that subject gets under Kafka's default mapping (the whole DN).
BROKER_PRINCIPAL = f"User:CN={BROKER_COMMON_NAME}"
CA_VALIDITY = dt.timedelta(days=3650)
BROKER_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class BrokerTls:
    ca_certificate: Path  # PEM: the truststore of the broker and of every client
    keystore: Path  # PEM: the broker's PKCS#8 key, its certificate and the CA's


def ensure_broker_tls(tls_dir: Path) -> BrokerTls:
    """The CA and broker certificate in tls_dir, created on first use. The broker certificate is renewed when it
    expires within 30 days or was not signed by the CA in tls_dir; the CA is kept, so clients keep trusting it."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_key_file, ca_file, keystore = tls_dir / "ca.key", tls_dir / "ca.pem", tls_dir / "broker.pem"
    if not (ca_key_file.is_file() and ca_file.is_file()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        write_private(ca_key_file, _pkcs8(ca_key))
        ca_file.write_bytes(_new_ca_certificate(ca_key).public_bytes(serialization.Encoding.PEM))
    ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    ca_certificate = x509.load_pem_x509_certificate(ca_file.read_bytes())
    if not _broker_certificate_valid(keystore, ca_certificate):
        broker_key = ec.generate_private_key(ec.SECP256R1())
        certificate = _new_broker_certificate(broker_key, ca_key, ca_certificate)
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (certificate, ca_certificate))
        write_private(keystore, _pkcs8(broker_key) + chain)
    return BrokerTls(ca_certificate=ca_file, keystore=keystore)


def _broker_certificate_valid(keystore: Path, ca_certificate: x509.Certificate) -> bool:
    if not keystore.is_file():
        return False
    certificate = x509.load_pem_x509_certificates(keystore.read_bytes())[0]
    if certificate.issuer != ca_certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, x509.InvalidSignature):
        return False
    return certificate.not_valid_after_utc - _now() > RENEW_BEFORE


def _new_ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AdvertiseX local Kafka CA")])
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _new_broker_certificate(
    key: ec.EllipticCurvePrivateKey, ca_key, ca_certificate: x509.Certificate
) -> x509.Certificate:
    now = _now()
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_COMMON_NAME)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + BROKER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Kafka's PEM keystore reads PKCS#8 keys only, not SEC1 (the "EC" kind of PEM key).
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
