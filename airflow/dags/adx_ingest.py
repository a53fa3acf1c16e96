"""
### adx_ingest: land what has arrived, every hour

One task per source, each an available-now landing (`ingestion.orchestration.tasks.land_source`): the Kafka
topics of impressions and bid requests (with their dead-letter topics) and the tracking system's clicks and
conversions CSV drop folders. Progress lives in the streaming checkpoints, so a rerun or a retry lands only what
was not landed before, exactly once; records read = landed + quarantined is checked per micro-batch.

A task that landed rows publishes the asset of its raw table (`raw.<source>`) with the arrival dates it wrote
in the event's extra; adx_transform runs on those events. A task with nothing new is skipped (no event).

On the embedded warehouse the tasks take turns on the Derby metastore (ingestion.metastore_lock).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from ingestion.orchestration.dag_defaults import RAW_SOURCES, common_dag_args, raw_asset
from ingestion.settings import Settings

settings = Settings()


@dag(
    dag_id="adx_ingest",
    schedule="@hourly",
    dagrun_timeout=timedelta(hours=1),
    tags=["adx", "ingestion"],
    doc_md=__doc__,
    **common_dag_args(settings),
)
def adx_ingest():
    for source in RAW_SOURCES:

        @task(task_id=f"land_{source}", outlets=[raw_asset(source)], execution_timeout=timedelta(minutes=45))
        def land(source: str = source, *, outlet_events=None) -> dict:
            from ingestion.orchestration.tasks import land_source

            summary = land_source(Settings(), source)
            if not summary.landed_anything:
                raise AirflowSkipException(f"nothing new for {source}")
            outlet_events[raw_asset(source)].extra = summary.as_asset_extra()
            return summary.as_asset_extra()

        land()


adx_ingest()
