"""Every setting of the warehouse, its default and its environment variable, in one place."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Read from `ADX_*` environment variables; defaults give the embedded warehouse under `./data`."""

    model_config = SettingsConfigDict(env_prefix="ADX_", extra="ignore")

    data_dir: Path = Field(
        default=PROJECT_DIR / "data",
        description="Project-local folder for landing files, ground truth, the lake and the metastore.",
    )
    lake_uri: str | None = Field(
        default=None,
        description="Warehouse location of every table (spark.sql.warehouse.dir); "
        "a local path or an hdfs:// URI. Default: <data_dir>/lake.",
    )
    metastore_url: str | None = Field(
        default=None,
        description="JDBC URL of the Hive metastore database. Default: embedded Derby in <data_dir>/metastore_db.",
    )
    dbt_target: str = Field(default="embedded", description="dbt target in profiles/profiles.yml.")
    spark_master: str = Field(default="local[2]")
    spark_driver_memory: str = Field(default="3g")
    spark_shuffle_partitions: int = Field(default=4, ge=1)
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        description="Kafka brokers the shipper, the RTB bridge, the landers and the monitor talk to.",
    )
    stream_max_records_per_batch: int = Field(
        default=2_000_000,
        ge=1,
        description="Largest micro-batch of a Kafka lander (maxOffsetsPerTrigger): bounds memory on a backlog.",
    )
    stream_trigger_seconds: int = Field(default=30, ge=1, description="Micro-batch interval of continuous landers.")
    jars_dir: Path = Field(
        default=PROJECT_DIR / ".jars",
        description="Spark connector jars resolved from Maven Central by `make jars` (jvm/pom.xml).",
    )

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
    def streaming_dir(self) -> Path:
        """Shipper positions and Structured Streaming checkpoints."""
        return self.data_dir / "streaming"

    @cached_property
    def resolved_lake_uri(self) -> str:
        return self.lake_uri or str((self.data_dir / "lake").resolve())

    @cached_property
    def resolved_metastore_url(self) -> str:
        if self.metastore_url:
            return self.metastore_url
        return f"jdbc:derby:;databaseName={(self.data_dir / 'metastore_db').resolve()};create=true"

    def dbt_env(self) -> dict[str, str]:
        """Environment variables that profiles/profiles.yml reads through env_var()."""
        return {
            "ADX_LAKE_URI": self.resolved_lake_uri,
            "ADX_METASTORE_URL": self.resolved_metastore_url,
            "ADX_DBT_TARGET": self.dbt_target,
            "ADX_SPARK_SHUFFLE_PARTITIONS": str(self.spark_shuffle_partitions),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROFILES_DIR": str(PROJECT_DIR / "profiles"),
            "DBT_PROJECT_DIR": str(PROJECT_DIR),
        }
