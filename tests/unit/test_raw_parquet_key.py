"""The raw zone's Parquet master key and the Spark settings that carry it (ingestion/raw_encryption.py)."""

from __future__ import annotations

import base64
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pyspark
import pytest
import yaml

from ingestion.dbt_secrets import dbt_secret_env
from ingestion.raw_encryption import (
    KEY_LIST_CONF,
    KEY_LIST_ENV,
    MASTER_KEY_NAME,
    raw_encryption_conf,
    raw_parquet_master_key,
    raw_table_options,
)
from ingestion.settings import PROJECT_DIR, Settings


def test_a_256_bit_master_key_is_generated_once_into_a_private_file(tmp_path):
    settings = Settings(data_dir=tmp_path)

    key = raw_parquet_master_key(settings)

    assert len(base64.b64decode(key, validate=True)) == 32
    assert stat.S_IMODE(settings.raw_parquet_key_file.stat().st_mode) == 0o600
    assert raw_parquet_master_key(Settings(data_dir=tmp_path)) == key
    assert raw_parquet_master_key(Settings(data_dir=tmp_path / "other")) != key


def test_the_environment_key_wins_and_reaches_spark_and_dbt_only_as_the_key_list(tmp_path):
    key = base64.b64encode(bytes(range(16))).decode()
    settings = Settings(data_dir=tmp_path, raw_parquet_key=key)

    conf = raw_encryption_conf(settings)

    assert conf[KEY_LIST_CONF] == f"{MASTER_KEY_NAME}:{key}"
    assert dbt_secret_env(settings)[KEY_LIST_ENV] == conf[KEY_LIST_CONF]
    assert not settings.raw_parquet_key_file.exists()
    assert key not in repr(settings)
    assert raw_table_options(settings) == {"parquet.encryption.uniform.key": MASTER_KEY_NAME}


@pytest.mark.parametrize("key", ["", "not base64!", base64.b64encode(b"fifteen bytes..").decode()])
def test_a_key_that_is_no_aes_key_is_refused(tmp_path, key):
    with pytest.raises(ValueError, match="base64 of 16, 24 or 32 bytes"):
        raw_parquet_master_key(Settings(data_dir=tmp_path, raw_parquet_key=key))


def test_spark_redacts_the_key_list_and_what_it_redacted_before():
    """Spark matches spark.redaction.regex against setting names (Java regex; this one reads the same in Python)."""
    pattern = re.compile(raw_encryption_conf(Settings())["spark.redaction.regex"])
    for name in (KEY_LIST_CONF, "spark.hadoop.javax.jdo.option.ConnectionPassword", "spark.ssl.keyStorePassword"):
        assert pattern.search(name), name
    assert not pattern.search("spark.hadoop.parquet.encryption.kms.client.class")


def test_off_means_no_keys_anywhere_and_plaintext_tables(tmp_path):
    settings = Settings(data_dir=tmp_path, raw_encryption=False)

    assert raw_encryption_conf(settings) == {}
    assert raw_table_options(settings) == {}
    assert dbt_secret_env(settings)[KEY_LIST_ENV] == ""
    assert not settings.raw_parquet_key_file.exists()


def test_the_dbt_profile_reads_the_key_list_from_the_secret_variable():
    profile = yaml.safe_load(Path(PROJECT_DIR / "profiles" / "profiles.yml").read_text())
    conf = profile["adx"]["outputs"]["embedded"]["server_side_parameters"]
    assert conf[KEY_LIST_CONF] == f"{{{{ env_var('{KEY_LIST_ENV}') }}}}"
    for name, value in raw_encryption_conf(Settings()).items():
        if name != KEY_LIST_CONF:
            assert conf[name] == value, name


def test_the_kms_client_jar_matches_the_parquet_version_pyspark_ships():
    properties = (
        ET.parse(PROJECT_DIR / "jvm" / "pom.xml").getroot().find("{http://maven.apache.org/POM/4.0.0}properties")
    )
    versions = {child.tag.split("}")[1]: child.text for child in properties}
    shipped = [jar.name for jar in (Path(pyspark.__file__).parent / "jars").glob("parquet-hadoop-*.jar")]
    assert shipped == [f"parquet-hadoop-{versions['parquet.version']}.jar"]
    assert versions["spark.version"] == pyspark.__version__
