"""The one way this project builds a SparkSession, so that the loaders and dbt see the same warehouse."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ingestion.metastore_lock import hold_embedded_metastore
from ingestion.raw_encryption import raw_encryption_conf
from ingestion.settings import LOOPBACK_ONLY_ENV, PROJECT_DIR, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings, *, hive: bool = True) -> dict[str, str]:
    """Spark and Hive settings of the warehouse; profiles/profiles.yml passes the same keys to dbt.

    hive=False gives a session without the metastore (in-memory catalog, no Derby) for processes that run beside
    the one holding the embedded metastore, such as the topic monitor; it cannot see the warehouse tables.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log4j = os.environ.get("ADX_SPARK_LOG4J", str(PROJECT_DIR / "conf" / "log4j2.properties"))
    java_options = f"-Dlog4j2.configurationFile=file:{log4j} -Dderby.stream.error.file={settings.data_dir}/derby.log"
    conf = {
        "spark.master": settings.spark_master,
        "spark.app.name": "advertisex-warehouse",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.driver.extraJavaOptions": java_options,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": settings.resolved_lake_uri,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # dbt-spark forces ANSI mode off for its sessions; the loaders use the same mode so that SQL behaves alike.
        "spark.sql.ansi.enabled": "false",
        # Kafka record headers may repeat a key; the landers read them as a map in which the last one wins.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        # Hive settings reach the metastore client only with the spark.hadoop. prefix.
        "spark.hadoop.javax.jdo.option.ConnectionURL": settings.resolved_metastore_url,
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        # The metastore cannot push filters on date partition columns down to Derby; Spark then lists the
        # table's partitions and prunes them itself (plans still show PartitionFilters).
        "spark.sql.hive.metastorePartitionPruningFallbackOnException": "true",
    }
    conf.update(raw_encryption_conf(settings))
    if not settings.metastore_is_derby:
        conf.update(_metastore_database_conf(settings))
    if settings.resolved_lake_uri.startswith("hdfs://"):
        from ingestion.stack.hdfs import hdfs_client_conf

        conf.update(hdfs_client_conf(settings))
    if not hive:
        conf["spark.sql.catalogImplementation"] = "in-memory"
        conf = {key: value for key, value in conf.items() if not key.startswith(("spark.hadoop.", "spark.sql.hive."))}
    if settings.spark_jars:
        conf["spark.jars"] = settings.spark_jars
    return conf


def _metastore_database_conf(settings: Settings) -> dict[str, str]:
    """The metastore database is Derby (embedded, ships with pyspark) or PostgreSQL (the stack's; its JDBC driver
    comes from jvm/pom.xml)."""
    url = settings.resolved_metastore_url
    if not url.startswith("jdbc:postgresql:"):
        raise ValueError(f"ADX_METASTORE_URL is {url!r}: only Derby and PostgreSQL metastores are supported")
    driver, jar_glob = "org.postgresql.Driver", "postgresql-*.jar"
    jars = sorted(settings.jars_dir.glob(jar_glob))
    if not jars:
        raise FileNotFoundError(f"no {jar_glob} in {settings.jars_dir}: run `make jars`")
    return {
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": driver,
        "spark.hadoop.javax.jdo.option.ConnectionUserName": settings.metastore_user,
        "spark.hadoop.javax.jdo.option.ConnectionPassword": settings.resolved_metastore_password(),
        # DataNucleus loads the driver through the JVM's own class path, not through spark.jars.
        "spark.driver.extraClassPath": str(jars[-1]),
        # `adx stack up` creates the whole schema (ingestion/stack/metastore_schema.py): clients creating tables
        # lazily, mid-transaction, can wait for ever on their own locks.
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
    }


def get_spark(settings: Settings, *, hive: bool = True, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Start (or reuse) the SparkSession of this process: local, Hive-backed (unless hive=False), quiet.
    extra_conf adds or overrides settings of a new session (the bench's status REST API, for one)."""
    from pyspark.sql import SparkSession

    # PySpark logs every failed query's whole plan and JVM stack as JSON; the exception itself says enough.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)

    if hive:
        hold_embedded_metastore(settings)
    os.environ.update(LOOPBACK_ONLY_ENV)
    builder = SparkSession.builder.enableHiveSupport() if hive else SparkSession.builder
    for key, value in (spark_conf(settings, hive=hive) | (extra_conf or {})).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def refresh_tables(spark: SparkSession, databases: tuple[str, ...] = ("staging", "intermediate", "marts")) -> None:
    """Drop this session's cached metadata and file listings of the tables another process (the Thrift server,
    for dbt's thrift target) has rewritten."""
    existing = {row.namespace for row in spark.sql("SHOW DATABASES").collect()}
    for database in databases:
        if database in existing:
            for table in spark.catalog.listTables(database):
                spark.catalog.refreshTable(f"{database}.{table.name}")
