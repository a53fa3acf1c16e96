"""
### adx_ingest: land what has arrived, every hour

One task per source, each an available-now landing (`ingestion.orchestration.tasks.land_source`): the Kafka
topics of impressions and bid requests (with their dead-letter topics) and the tracking system's clicks and
conversions CSV drop folders. Progress lives in the streaming checkpoints, so a rerun or a retry lands only what
was not landed before, exactly once; records read = landed + quarantined is checked per micro-batch.

`publish_refreshed_tables` then emits one asset event per raw table that received rows (`raw.<source>`, with the
arrival dates written in its extra), all at once, so that adx_transform runs once for the whole landing.

On the embedded warehouse the landing tasks take turns on the Derby metastore (ingestion.metastore_lock).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from ingestion.orchestration.dag_defaults import (
    RAW_SOURCES,
    REFRESHED_RAW_TABLES,
    asset_event_extra,
    common_dag_args,
    raw_asset,
)
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
    landings = []
    for source in RAW_SOURCES:

        @task(task_id=f"land_{source}", execution_timeout=timedelta(minutes=45))
        def land(source: str = source) -> dict:
            from ingestion.orchestration.tasks import land_source

            return land_source(Settings(), source).as_dict()

        landings.append(land())

    @task(outlets=[REFRESHED_RAW_TABLES], trigger_rule="all_done")
    def publish_refreshed_tables(*, ti=None, outlet_events=None) -> list[str]:
        """An asset event for each raw table that received rows, also when another source's landing failed."""
        summaries = ti.xcom_pull(task_ids=[f"land_{source}" for source in RAW_SOURCES]) or []
        refreshed = [summary for summary in summaries if summary and summary["micro_batches"] > 0]
        if not refreshed:
            raise AirflowSkipException("nothing new landed")
        for summary in refreshed:
            outlet_events[REFRESHED_RAW_TABLES].add(raw_asset(summary["source"]), extra=asset_event_extra(summary))
        return [summary["source"] for summary in refreshed]

    landings >> publish_refreshed_tables()


adx_ingest()
