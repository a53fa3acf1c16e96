"""How Cosmos renders and runs the dbt project in adx_transform.

Rendering reads the manifest `adx airflow-manifest` builds (`dbt parse`, no Spark): parsing the DAG file never
starts dbt. The target is the warehouse's (settings.resolved_dbt_target: `embedded`, dbt-spark's in-process
session, by default; `thrift` when ADX_WAREHOUSE=stack).

Execution mode (ADX_AIRFLOW_DBT_EXECUTION_MODE; the bench compares them):
- `watcher` (default): one producer task runs a single `dbt build` of the selection (one Spark session, one
  parse); each model and its tests get a sensor task that succeeds or fails with that node's result, so the graph
  of tasks, retries per model and failure isolation stay while the cost stays that of one build. A retried
  sensor runs its own model (or its tests) with dbt.
- `local`: every model and every test is its own dbt invocation (a Spark session and a project load each);
  with ADX_AIRFLOW_DBT_TEST_BEHAVIOR=build, one `dbt build` per model (model and tests in one task).

On the embedded warehouse every task that starts dbt first takes the metastore lock (ingestion.metastore_lock):
Derby admits one JVM, so a producer, a retried sensor and an ingest task wait for each other instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ingestion.dbt_secrets import dbt_secret_env
from ingestion.metastore_lock import hold_embedded_metastore
from ingestion.orchestration.tasks import manifest_dir
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import PRODUCTION_DBT_ENV

INTERVAL_TASK_ID = "dbt_interval"
CHECK_DATA_TASK_ID = "check_data"  # adx_transform's last task: anomaly tests and status metrics
ELEMENTARY_REPORT_TASK_ID = "elementary_report"  # after check_data, when the elementary package is installed
# The vars of every dbt invocation: the interval task's result, rendered as a dict (the DAG renders templates as
# native objects).
DBT_VARS_TEMPLATE = "{{ ti.xcom_pull(task_ids='" + INTERVAL_TASK_ID + "')['dbt_vars'] }}"
SENSOR_POKE_SECONDS = 2


class ManifestMissingError(FileNotFoundError):
    pass


def manifest_path(settings: Settings) -> Path:
    path = manifest_dir(settings) / "manifest.json"
    if not path.is_file():
        raise ManifestMissingError(
            f"no dbt manifest at {path}: run `.venv/bin/adx airflow-manifest` (make airflow does) after changing "
            "the dbt project"
        )
    return path


def prepare_for_dbt(context: dict[str, Any]) -> None:
    """pre_execute of tasks that always run dbt (the watcher producer; every task in local mode): hold the embedded
    metastore, and give dbt its secrets (ingestion/dbt_secrets.py) through this process's environment,
    not the operator's env, which Airflow would serialise with the DAG and render in its UI."""
    settings = Settings()
    hold_embedded_metastore(settings)
    os.environ.update(dbt_secret_env(settings))


def prepare_for_dbt_on_retry(context: dict[str, Any]) -> None:
    """pre_execute of watcher sensors: the first try only reads the producer's results; a retry runs dbt."""
    if context["ti"].try_number > 1:
        prepare_for_dbt(context)


def cosmos_task_group_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of cosmos.DbtTaskGroup for this warehouse and execution mode."""
    from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import (
        ExecutionMode,
        InvocationMode,
        LoadMode,
        SourceRenderingBehavior,
        TestBehavior,
        TestIndirectSelection,
    )

    watcher = settings.airflow_dbt_execution_mode == "watcher"
    if watcher and settings.airflow_dbt_test_behavior == "build":
        raise ValueError("ADX_AIRFLOW_DBT_TEST_BEHAVIOR=build needs ADX_AIRFLOW_DBT_EXECUTION_MODE=local")
    operator_args: dict[str, Any] = {
        "vars": DBT_VARS_TEMPLATE,
        "env": settings.dbt_env() | PRODUCTION_DBT_ENV,
        "install_deps": False,
        "pre_execute": prepare_for_dbt_on_retry if watcher else prepare_for_dbt,
    }
    if watcher:
        operator_args["poke_interval"] = SENSOR_POKE_SECONDS
    return {
        "project_config": ProjectConfig(
            dbt_project_path=settings.dbt_project_dir,
            manifest_path=manifest_path(settings),
            project_name="adx",
            models_relative_path="dbt_project",
            seeds_relative_path="seeds",
            install_dbt_deps=False,
        ),
        "profile_config": ProfileConfig(
            profile_name="adx",
            target_name=settings.resolved_dbt_target,
            profiles_yml_filepath=PROJECT_DIR / "profiles" / "profiles.yml",
        ),
        "execution_config": ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER if watcher else ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            # A test runs after every model it reads: tests of two models get their own task after both.
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
            # The producer is never retried (Cosmos skips a producer's retry): a failed node's sensor retries it.
            setup_operator_args={"pre_execute": prepare_for_dbt, "retries": 0} if watcher else None,
        ),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior(settings.airflow_dbt_test_behavior),
            source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
            should_detach_multiple_parents_tests=True,
            dbt_deps=False,
        ),
        "operator_args": operator_args,
    }


def start_sensors_after_producer(task_group) -> None:
    """Put the watcher producer upstream of the group's first sensors.

    Cosmos does this for a DbtDag but not for a DbtTaskGroup, whose first sensors then start beside the producer.
    Under `dag.test()` (one task at a time) a sensor that starts first waits for ever for a producer that never
    runs; under a scheduler a sensor only holds a slot earlier. After the producer they run once it is done,
    whether it succeeded or failed (a failed `dbt build` still reported every node it ran), but not when the
    interval task before it failed (all_done_min_one_success over the interval task and the producer).
    """
    from airflow.task.trigger_rule import TriggerRule
    from cosmos.constants import PRODUCER_WATCHER_DONE_TASK_ID, PRODUCER_WATCHER_TASK_ID

    prefix = f"{task_group.group_id}."
    producer = task_group.children.get(prefix + PRODUCER_WATCHER_TASK_ID)
    if producer is None:  # local execution mode: no producer
        return
    gate_ids = {producer.task_id, prefix + PRODUCER_WATCHER_DONE_TASK_ID}
    for task in task_group.iter_tasks():
        if task.task_id in gate_ids:
            continue
        if not any(upstream.startswith(prefix) for upstream in task.upstream_task_ids):
            producer >> task
            task.trigger_rule = TriggerRule.ALL_DONE_MIN_ONE_SUCCESS
