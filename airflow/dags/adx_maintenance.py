"""
### adx_maintenance: daily housekeeping of the warehouse

- `raw_retention`: drops raw partitions (and those of dbt's staging base tables, parsed copies of raw kept by
  arrival date) whose arrival date is more than ADX_RAW_RETENTION_DAYS (90) before the run's data interval end
  (never the clock, so a rerun or a backfill drops the same partitions).
- `vacuum_quarantine`: the same for quarantined records, after ADX_QUARANTINE_RETENTION_DAYS (30).
- `dbt_docs`: `dbt docs generate`, the static docs site analysts browse (target/index.html; `adx dbt -- docs serve`).

The tasks open Spark one after the other: on the embedded warehouse they would wait for each other anyway.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from ingestion.orchestration.dag_defaults import common_dag_args
from ingestion.settings import Settings

settings = Settings()


def _as_of(data_interval_end):
    return data_interval_end.date()


@dag(
    dag_id="adx_maintenance",
    schedule="@daily",
    dagrun_timeout=timedelta(hours=2),
    tags=["adx", "maintenance"],
    doc_md=__doc__,
    **common_dag_args(settings),
)
def adx_maintenance():
    @task
    def raw_retention(data_interval_end=None) -> dict:
        from ingestion.orchestration.tasks import apply_raw_retention

        dropped = apply_raw_retention(Settings(), _as_of(data_interval_end))
        return {table: [str(d) for d in dates] for table, dates in dropped.items()}

    @task
    def vacuum_quarantine(data_interval_end=None) -> dict:
        from ingestion.orchestration.tasks import vacuum_quarantine as drop_old_quarantine

        dropped = drop_old_quarantine(Settings(), _as_of(data_interval_end))
        return {table: [str(d) for d in dates] for table, dates in dropped.items()}

    @task
    def dbt_docs() -> str:
        from ingestion.orchestration.tasks import generate_docs

        return str(generate_docs(Settings()))

    raw_retention() >> vacuum_quarantine() >> dbt_docs()


adx_maintenance()
