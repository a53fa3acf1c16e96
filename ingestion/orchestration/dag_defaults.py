"""What every AdvertiseX DAG shares: default task arguments, the raw-table assets, the start date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, AssetAlias

from ingestion.orchestration.alerts import log_failure_alert
from ingestion.settings import Settings

RAW_SOURCES = ("impressions", "bid_requests", "clicks", "conversions")


def default_args(settings: Settings) -> dict[str, Any]:
    """Retries with exponential backoff and the structured failure alert, for every task."""
    return {
        "owner": "adx-data-eng",
        "retries": 2,
        "retry_delay": timedelta(seconds=settings.airflow_retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "on_failure_callback": log_failure_alert,
    }


def start_date(settings: Settings) -> datetime:
    return datetime.combine(settings.airflow_start_date, datetime.min.time(), tzinfo=UTC)


def raw_asset(source: str):
    """The Airflow asset of one raw table: adx_ingest emits an event when it lands rows in it."""
    return Asset(name=f"raw.{source}", uri=f"hive://adx-warehouse/raw/{source}", group="adx_raw")


def common_dag_args(settings: Settings) -> dict[str, Any]:
    """The @dag arguments every AdvertiseX DAG shares: start date, catchup setting, one active run at a time
    (each run rewrites partitions the next one reads), and the default task arguments."""
    return {
        "start_date": start_date(settings),
        "catchup": settings.airflow_catchup,
        "max_active_runs": 1,
        "default_args": default_args(settings),
    }


# The alias through which adx_ingest publishes the raw tables a run refreshed (one event per table, at once).
REFRESHED_RAW_TABLES = AssetAlias("adx_raw_tables_refreshed")


def asset_event_extra(landing_summary: dict) -> dict:
    """The extra of a raw table's asset event: adx_transform reads `ingest_dates` to choose what it rebuilds."""
    return {
        key: landing_summary[key] for key in ("ingest_dates", "records_read", "records_landed", "records_quarantined")
    }
