"""
### adx_transform: the dbt project, model by model, for the arrival dates that just landed

Runs when adx_ingest publishes any raw-table asset. `dbt_interval` reads the arrival dates of the triggering
asset events (or the `start_date` / `end_date` params of a manual run or backfill; neither: every date) and
turns them into dbt vars: `run_date` = the last arrival date, `lookback_days` widened to reach the first one. Every
incremental mart then rewrites exactly those partitions plus the lookback (late clicks and conversions), so a
rerun replaces what the previous run wrote.

`dbt` is a Cosmos DbtTaskGroup over the project (rendered from the manifest `adx airflow-manifest` builds):
source freshness first, then one task per seed and model with its tests after it
(see ingestion/orchestration/dbt_cosmos.py for the execution mode). `check_data` runs last, once every dbt task
succeeded: the anomaly tests (tag `anomaly`, Elementary's too when enabled) and `adx status`'s Prometheus metrics
(docs/monitoring.md). A failed dbt task alerts through the failure callback instead. With the Elementary switch on
(`adx elementary enable`), `elementary_report` follows: `edr report` to ADX_DATA_DIR/elementary/report.html.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAny, Param, dag, task
from cosmos import DbtTaskGroup

from ingestion.orchestration.dag_defaults import RAW_SOURCES, common_dag_args, raw_asset
from ingestion.orchestration.dbt_cosmos import (
    CHECK_DATA_TASK_ID,
    ELEMENTARY_REPORT_TASK_ID,
    INTERVAL_TASK_ID,
    cosmos_task_group_kwargs,
    start_sensors_after_producer,
)
from ingestion.settings import Settings

settings = Settings()


@dag(
    dag_id="adx_transform",
    schedule=AssetAny(*(raw_asset(source) for source in RAW_SOURCES)),
    dagrun_timeout=timedelta(hours=3),
    params={
        "start_date": Param(None, type=["null", "string"], format="date", description="First arrival date to rebuild"),
        "end_date": Param(None, type=["null", "string"], format="date", description="Last arrival date to rebuild"),
    },
    render_template_as_native_obj=True,
    tags=["adx", "dbt"],
    doc_md=__doc__,
    **common_dag_args(settings),
)
def adx_transform():
    @task(task_id=INTERVAL_TASK_ID)
    def dbt_interval(params=None, triggering_asset_events=None) -> dict:
        from ingestion.orchestration.intervals import interval_of_run
        from ingestion.orchestration.tasks import project_lookback_days

        extras = [event.extra for events in (triggering_asset_events or {}).values() for event in events]
        interval = interval_of_run(params or {}, extras)
        dbt_vars = interval.dbt_vars(project_lookback_days(Settings()))
        print(f"rebuilding arrival dates {interval.describe()}: dbt vars {dbt_vars}")
        return {"interval": interval.describe(), "dbt_vars": dbt_vars}

    @task(task_id=CHECK_DATA_TASK_ID)
    def check_data() -> dict:
        from ingestion.orchestration.tasks import check_data as run_anomaly_tests_and_status

        return run_anomaly_tests_and_status(Settings())

    @task(task_id=ELEMENTARY_REPORT_TASK_ID)
    def elementary_report() -> str:
        # Its own task: edr starts its own Spark, which the embedded Derby metastore admits only once check_data's
        # process (and its Spark) has ended.
        from ingestion.elementary import report

        return str(report(Settings()))

    dbt = DbtTaskGroup(group_id="dbt", **cosmos_task_group_kwargs(settings))
    checked = check_data()
    dbt_interval() >> dbt >> checked
    if settings.elementary_installed:
        checked >> elementary_report()
    start_sensors_after_producer(dbt)


adx_transform()
