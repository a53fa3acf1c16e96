"""Every setting of the warehouse, its default and its environment variable, in one place."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent
# For every Spark JVM (ours, and the one dbt's session method starts): without it, Spark finds the machine's address
# on its network interfaces (the hostname resolves to loopback) and resolves that address's name through DNS, a
# query to the name server on every start (tests/pipeline/test_outbound.py).
LOOPBACK_ONLY_ENV = {"SPARK_LOCAL_IP": "127.0.0.1"}


class Settings(BaseSettings):
    """Read from `ADX_*` environment variables; defaults give the embedded warehouse under `./data`."""

    model_config = SettingsConfigDict(env_prefix="ADX_", extra="ignore")

    warehouse: Literal["embedded", "stack"] = Field(
        default="embedded",
        description="embedded: local lake, Derby metastore, dbt in-process. stack: the services of `adx stack up` "
        "(HDFS lake, Postgres metastore, dbt through the Spark Thrift Server). Explicit locations below win.",
    )
    data_dir: Path = Field(
        default=PROJECT_DIR / "data",
        description="Project-local folder for landing files, ground truth, the lake and the metastore.",
    )

    lake_uri: str | None = Field(
        default=None,
        description="Warehouse location of every table (spark.sql.warehouse.dir); a local path or an hdfs:// URI. "
        "Default: <data_dir>/lake (embedded), hdfs://127.0.0.1:<hdfs_port>/adx/lake (stack).",
    )
    metastore_url: str | None = Field(
        default=None,
        description="JDBC URL of the Hive metastore database. Default: embedded Derby in <data_dir>/metastore_db "
        "(embedded), jdbc:postgresql://127.0.0.1:<metastore_db_port>/metastore (stack).",
    )
    metastore_user: str = Field(default="adx", description="User of a Postgres metastore database.")
    metastore_reader_user: str = Field(
        default="adx_reader",
        description="Read-only user of the stack's metastore database: the analysts' Thrift server's (password "
        "generated into <data_dir>/stack/postgres/metastore-reader.password).",
    )
    metastore_password: SecretStr | None = Field(
        default=None,
        description="Password of a Postgres metastore database. Default: the one `adx stack up` generated "
        "(<data_dir>/stack/postgres/metastore.password).",
    )
    metastore_db_port: int = Field(default=15432, description="Port of the stack's PostgreSQL server.")
    hdfs_port: int = Field(
        default=19820,
        description="NameNode RPC port of the stack's HDFS; the NameNode web port is +1, the DataNode's "
        "data, IPC and web ports +2, +3, +4.",
    )
    thrift_port: int = Field(
        default=10000,
        description="Port of the stack's engineers' Spark Thrift Server (HiveServer2): dbt's thrift target.",
    )
    analyst_thrift_port: int = Field(
        default=10001,
        description="Port of the stack's analysts' Spark Thrift Server: reads marts only (ingestion/stack/thrift.py).",
    )
    thrift_driver_memory: str = Field(default="2g", description="Heap of the Spark Thrift Server's JVM.")
    thrift_user: str = Field(
        default="adx", description="The login dbt's thrift target and the stack's own checks use on the Thrift server."
    )
    thrift_password: SecretStr | None = Field(
        default=None,
        description="Password of thrift_user. Default: <data_dir>/secrets/sql-users/engineers/<thrift_user>.password, "
        "which `adx stack up ldap` generates.",
    )
    ldap_port: int = Field(default=13389, description="Port of the stack's LDAP server (the Thrift server's logins).")
    dbt_target: str | None = Field(
        default=None,
        description="dbt target in profiles/profiles.yml. Default: embedded (embedded), thrift (stack).",
    )
    spark_master: str = Field(default="local[2]")
    spark_driver_memory: str = Field(default="3g")
    spark_shuffle_partitions: int = Field(default=4, ge=1)
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        description="Kafka brokers the shipper, the RTB bridge, the landers and the monitor talk to.",
    )
    kafka_secrets_dir: Path | None = Field(
        default=None,
        description="Folder of the Kafka clients' credentials: ca.pem (the authority the brokers' TLS certificates "
        "chain to) and <user>.password for each SCRAM user (ingestion/kafka_access.py). Default: "
        "<data_dir>/secrets/kafka, which `adx stack up kafka` fills for its broker.",
    )
    stream_max_records_per_batch: int = Field(
        default=2_000_000,
        ge=1,
        description="Largest micro-batch of a Kafka lander (maxOffsetsPerTrigger): bounds memory on a backlog.",
    )
    stream_trigger_seconds: int = Field(default=30, ge=1, description="Micro-batch interval of continuous landers.")
    metastore_lock_timeout_seconds: float = Field(
        default=3600,
        ge=0,
        description="How long a Spark process waits for the embedded metastore while another process uses it.",
    )
    raw_retention_days: int = Field(
        default=90,
        ge=1,
        description="Raw partitions whose arrival date is older than this many days are dropped by adx_maintenance.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Key of the pseudonymous user ids in staging and the marts (HMAC-SHA-256). Default: the key "
        "in <data_dir>/secrets/pseudonym.key, generated on first use. Changing it changes every pseudonym: "
        "rebuild with `adx dbt -- build --full-refresh`.",
    )
    raw_encryption: bool = Field(
        default=True,
        description="Encrypt the raw and quarantine tables' Parquet files (ingestion/raw_encryption.py). Off only "
        "where a reader without Spark's Parquet encryption must read raw (the bench's DuckDB peer).",
    )
    raw_parquet_key: SecretStr | None = Field(
        default=None,
        description="Master key of the raw zone's Parquet encryption, base64 of 16, 24 or 32 bytes. Default: the "
        "key in <data_dir>/secrets/raw-parquet.key, generated on first use. Without it raw cannot be read.",
    )
    quarantine_retention_days: int = Field(
        default=30,
        ge=1,
        description="Quarantined records older than this many days (by arrival date) are dropped by adx_maintenance.",
    )
    dbt_project_dir: Path = Field(
        default=PROJECT_DIR, description="The dbt project (dbt_project.yml) the Airflow DAGs run through Cosmos."
    )
    airflow_dbt_execution_mode: Literal["watcher", "local"] = Field(
        default="watcher",
        description="How Cosmos runs dbt: watcher (one `dbt build`, one sensor per model) or local (one dbt per task).",
    )
    airflow_dbt_test_behavior: Literal["after_each", "build"] = Field(
        default="after_each",
        description="local mode only: tests as their own tasks after each model, or `dbt build` per model.",
    )
    exporter_port: int = Field(
        default=19108, description="Port of the metrics exporter (`adx stack up exporter`) that Prometheus scrapes."
    )
    prometheus_port: int = Field(default=19090, description="Port of the stack's Prometheus server (127.0.0.1).")
    prometheus_interval_seconds: int = Field(
        default=15, ge=1, description="Prometheus's scrape and rule-evaluation interval."
    )
    airflow_port: int = Field(default=8080, description="Port of `make airflow`'s UI and API server (127.0.0.1).")
    airflow_retry_delay_seconds: float = Field(
        default=60, ge=0, description="First retry delay of a failed Airflow task (then exponential, up to 15 min)."
    )
    airflow_start_date: date = Field(default=date(2026, 11, 1), description="First data interval of the DAGs.")
    airflow_catchup: bool = Field(
        default=False,
        description="Let the scheduler create the runs missed since the start date (backfills work either way).",
    )
    jars_dir: Path = Field(
        default=PROJECT_DIR / ".jars",
        description="Spark connector jars resolved from Maven Central by `make jars` (jvm/pom.xml).",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, data_dir: Path) -> Path:
        # Every location derives from it (lake, Derby, Airflow's sqlite, which refuses a relative path), and
        # subprocesses run from the project folder: resolve a relative one once, against the caller's folder.
        return data_dir.absolute()

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def ground_truth_dir(self) -> Path:
        return self.data_dir / "ground_truth"

    @property
    def stack_dir(self) -> Path:
        """Data, logs and pid files of the local services started by `adx stack up`."""
        return self.data_dir / "stack"

    @property
    def metrics_dir(self) -> Path:
        """Prometheus text files written by batch jobs (`adx load`, `adx status`), served by the exporter."""
        return self.data_dir / "metrics"

    @property
    def elementary_installed(self) -> bool:
        """The elementary dbt package is installed in the dbt project (`adx elementary enable`)."""
        return (self.dbt_project_dir / "dbt_packages" / "elementary" / "dbt_project.yml").is_file()

    @property
    def streaming_dir(self) -> Path:
        """Shipper positions and Structured Streaming checkpoints."""
        return self.data_dir / "streaming"

    @property
    def checkpoints_dir(self) -> Path:
        """One Structured Streaming checkpoint per query (landers, pickup, topic monitor), named after the query."""
        return self.streaming_dir / "checkpoints"

    def for_stack(self) -> Settings:
        """These settings with warehouse=stack: what `adx stack up` and `adx run-stack` use (explicit locations,
        ports and passwords are kept)."""
        return Settings(**{**self.model_dump(), "warehouse": "stack"})

    @property
    def pseudonym_key_file(self) -> Path:
        """Where the pseudonymisation key is generated (mode 0600) when ADX_PSEUDONYM_KEY is unset."""
        return self.data_dir / "secrets" / "pseudonym.key"

    @property
    def raw_parquet_key_file(self) -> Path:
        """Where the raw zone's Parquet master key is generated (mode 0600) when ADX_RAW_PARQUET_KEY is unset."""
        return self.data_dir / "secrets" / "raw-parquet.key"

    @property
    def resolved_kafka_secrets_dir(self) -> Path:
        return self.kafka_secrets_dir or self.data_dir / "secrets" / "kafka"

    @property
    def sql_users_dir(self) -> Path:
        """The Thrift servers' logins: `engineers/<user>.password` and `analysts/<user>.password` files (mode 0600),
        one per LDAP user (ingestion/stack/ldap.py)."""
        return self.data_dir / "secrets" / "sql-users"

    def resolved_thrift_password(self) -> str:
        """ADX_THRIFT_PASSWORD, else thrift_user's password file; empty if neither exists."""
        if self.thrift_password is not None:
            return self.thrift_password.get_secret_value()
        try:
            return (self.sql_users_dir / "engineers" / f"{self.thrift_user}.password").read_text().strip()
        except FileNotFoundError:
            return ""

    @property
    def metastore_reader_password_file(self) -> Path:
        """The password `adx stack up` generates for the read-only metastore user (mode 0600)."""
        return self.stack_dir / "postgres" / "metastore-reader.password"

    @property
    def metastore_password_file(self) -> Path:
        """Where `adx stack up` keeps the password it generated for the Postgres metastore (mode 0600)."""
        return self.stack_dir / "postgres" / "metastore.password"

    @cached_property
    def resolved_lake_uri(self) -> str:
        if self.lake_uri:
            return self.lake_uri
        if self.warehouse == "stack":
            return f"hdfs://127.0.0.1:{self.hdfs_port}/adx/lake"
        return str((self.data_dir / "lake").resolve())

    @cached_property
    def resolved_metastore_url(self) -> str:
        if self.metastore_url:
            return self.metastore_url
        if self.warehouse == "stack":
            return f"jdbc:postgresql://127.0.0.1:{self.metastore_db_port}/metastore"
        return f"jdbc:derby:;databaseName={(self.data_dir / 'metastore_db').resolve()};create=true"

    @property
    def metastore_is_derby(self) -> bool:
        return self.resolved_metastore_url.startswith("jdbc:derby:")

    def resolved_metastore_password(self) -> str:
        """ADX_METASTORE_PASSWORD, else the password `adx stack up` generated; empty if neither exists."""
        if self.metastore_password is not None:
            return self.metastore_password.get_secret_value()
        try:
            return self.metastore_password_file.read_text().strip()
        except FileNotFoundError:
            return ""

    @property
    def resolved_dbt_target(self) -> str:
        if self.dbt_target:
            return self.dbt_target
        return "thrift" if self.warehouse == "stack" else "embedded"

    @property
    def spark_jars(self) -> str:
        """The jars of jvm/pom.xml that every Spark session loads (spark.jars), comma-separated."""
        jars = sorted(self.jars_dir.glob("*.jar")) if self.jars_dir.is_dir() else []
        return ",".join(str(jar) for jar in jars)

    def dbt_env(self) -> dict[str, str]:
        """Environment variables that profiles/profiles.yml reads through env_var()."""
        return {
            "ADX_LAKE_URI": self.resolved_lake_uri,
            "ADX_METASTORE_URL": self.resolved_metastore_url,
            "ADX_DBT_TARGET": self.resolved_dbt_target,
            "ADX_THRIFT_PORT": str(self.thrift_port),
            "ADX_THRIFT_USER": self.thrift_user,
            "ADX_SPARK_SHUFFLE_PARTITIONS": str(self.spark_shuffle_partitions),
            "ADX_SPARK_JARS": self.spark_jars,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROFILES_DIR": str(PROJECT_DIR / "profiles"),
            "DBT_PROJECT_DIR": str(self.dbt_project_dir),
            # Turns on the Elementary tests of the sources (tag elementary) once the package is installed.
            "ADX_ELEMENTARY": "true" if self.elementary_installed else "false",
            **LOOPBACK_ONLY_ENV,
        }
