"""Parquet modular encryption of the raw zone: the raw and quarantine tables, where raw user ids, IP addresses and
user agents live.

Each raw table carries the write option `parquet.encryption.uniform.key` (a key *name*), so every file Spark writes
into it, by any process, has its data pages and footer encrypted (AES-GCM) with a fresh data key, wrapped by the
master key of that name and stored in the footer. Reading needs the master key; files of every other table are
plaintext and read as before. Parquet's PropertiesDrivenCryptoFactory does the work; its KMS client here is
InMemoryKMS (parquet-hadoop's test jar, jvm/pom.xml), which takes the master keys from the Hadoop configuration,
so the master key must reach every Spark session that touches raw: spark_conf() for the loaders and the Thrift
server, and DBT_ENV_SECRET_* for dbt's own session (profiles/profiles.yml). Production replaces the KMS client
class with one of a real KMS (Vault, a cloud KMS), and the key never enters the configuration.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import TYPE_CHECKING

from ingestion.secret_files import read_or_create
from ingestion.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MASTER_KEY_NAME = "raw_zone"
AES_KEY_BYTES = (16, 24, 32)
KEY_LIST_ENV = "DBT_ENV_SECRET_ADX_RAW_PARQUET_KEY_LIST"
KEY_LIST_CONF = "spark.hadoop.parquet.encryption.key.list"
# Spark's default redaction pattern, plus the master keys: `SET` in any session (an analyst's, over the Thrift
# server) and Spark's logs show them as *********(redacted).
REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key|parquet[.]encryption[.]key[.]list"
RAW_TABLE_OPTIONS = {"parquet.encryption.uniform.key": MASTER_KEY_NAME}


def raw_parquet_master_key(settings: Settings) -> str:
    """ADX_RAW_PARQUET_KEY, else the key file's, generated (256 random bits) if there is none yet; base64."""
    if settings.raw_parquet_key is not None:
        key = settings.raw_parquet_key.get_secret_value().strip()
    else:
        key = read_or_create(settings.raw_parquet_key_file, lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    try:
        length = len(base64.b64decode(key, validate=True))
    except binascii.Error:
        length = -1
    if length not in AES_KEY_BYTES:
        raise ValueError("the raw-zone Parquet master key must be base64 of 16, 24 or 32 bytes (an AES key)")
    return key


def raw_encryption_conf(settings: Settings) -> dict[str, str]:
    """Spark settings that let a session read and write the encrypted raw tables (none when encryption is off)."""
    if not settings.raw_encryption:
        return {}
    return {
        "spark.hadoop.parquet.crypto.factory.class": "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory",
        "spark.hadoop.parquet.encryption.kms.client.class": "org.apache.parquet.crypto.keytools.mocks.InMemoryKMS",
        "spark.hadoop.parquet.encryption.data.key.length.bits": "256",
        KEY_LIST_CONF: f"{MASTER_KEY_NAME}:{raw_parquet_master_key(settings)}",
        "spark.redaction.regex": REDACTION_REGEX,
    }


def kms_client_jars(settings: Settings) -> list[str]:
    """The jar of the KMS client class (jvm/pom.xml), for a JVM class path (none when encryption is off)."""
    if not settings.raw_encryption or not settings.jars_dir.is_dir():
        return []
    return [str(jar) for jar in sorted(settings.jars_dir.glob("parquet-hadoop-*-tests.jar"))]


def raw_encryption_env(settings: Settings) -> dict[str, str]:
    """The variable profiles/profiles.yml reads the master key list from (empty when encryption is off)."""
    return {KEY_LIST_ENV: raw_encryption_conf(settings).get(KEY_LIST_CONF, "")}


def raw_table_options(settings: Settings) -> dict[str, str]:
    """Write options of a new raw or quarantine table."""
    return RAW_TABLE_OPTIONS if settings.raw_encryption else {}


def encrypt_from_now_on(spark: SparkSession, table: str, settings: Settings) -> None:
    """Give a raw table created before encryption the option, so that its next writes are encrypted. Its old
    files stay plaintext (readable beside encrypted ones) until reloaded or dropped by retention."""
    if not settings.raw_encryption:
        return
    pairs = [f"'{key}' = '{value}'" for key, value in RAW_TABLE_OPTIONS.items()]
    stored = spark.sql(f"show create table {table}").first()[0]  # SHOW CREATE TABLE prints OPTIONS the same way
    if not all(pair in stored for pair in pairs):
        spark.sql(f"alter table {table} set serdeproperties ({', '.join(pairs)})")
