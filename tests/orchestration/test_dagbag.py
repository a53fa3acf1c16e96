"""The DAG folder parses cleanly and every DAG follows the house rules (no Spark, no dbt run: fast tier).

Airflow loads the folder in a subprocess with the project's Airflow environment, over the manifest that
`adx airflow-manifest` builds (`dbt parse` only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from airflow_runner import ADX, airflow_env, migrate_and_build_manifest, run
from dbt_project_copy import copy_dbt_project
from elementary_project import PACKAGES_DIR, needs_elementary_packages

from ingestion.orchestration.airflow_env import DAGS_FOLDER

DAG_IDS = {"adx_ingest", "adx_transform", "adx_maintenance"}

FACTS = """
import json, time
started = time.monotonic()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()
parse_seconds = time.monotonic() - started
import cosmos.telemetry
facts = {"parse_seconds": parse_seconds, "import_errors": bag.import_errors, "cosmos_telemetry": cosmos.telemetry.should_emit(), "dags": {}}
for dag_id, dag in bag.dags.items():
    order = [t.task_id for t in dag.topological_sort()]  # raises on a cycle
    facts["dags"][dag_id] = {
        "tags": sorted(dag.tags), "max_active_runs": dag.max_active_runs, "catchup": dag.catchup,
        "doc_md": bool(dag.doc_md), "default_retries": dag.default_args.get("retries"),
        "tasks": {t.task_id: {"retries": t.retries, "on_failure_callback": bool(t.on_failure_callback),
                              "type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
                              "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule)} for t in dag.tasks},
        "sorted": len(order) == len(dag.tasks),
    }
print("FACTS " + json.dumps(facts))
"""


@pytest.fixture(scope="module")
def dagbag_facts(tmp_path_factory) -> dict:
    data_dir = tmp_path_factory.mktemp("adx-dagbag")
    return load_dagbag_facts(airflow_env(data_dir), data_dir / "airflow-test.log")


def load_dagbag_facts(env: dict[str, str], log: Path) -> dict:
    migrate_and_build_manifest(env, log)
    result = run([sys.executable, "-c", FACTS], env, log, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("FACTS ")]
    assert lines, f"the DagBag did not load; see {log}"
    return json.loads(lines[0][len("FACTS ") :])


def test_the_dag_folder_parses_without_import_errors_in_reported_time(dagbag_facts):
    assert dagbag_facts["import_errors"] == {}
    assert set(dagbag_facts["dags"]) == DAG_IDS
    print(f"\nDAG folder parse time (DagBag fill, 3 DAGs): {dagbag_facts['parse_seconds']:.2f} s")


def test_every_dag_has_tags_docs_one_active_run_and_acyclic_tasks(dagbag_facts):
    for dag_id, dag in dagbag_facts["dags"].items():
        assert "adx" in dag["tags"] and len(dag["tags"]) >= 2, dag_id
        assert dag["doc_md"], dag_id
        assert dag["max_active_runs"] == 1, dag_id
        assert dag["sorted"], dag_id


def test_every_task_retries_at_least_twice_and_alerts_on_failure(dagbag_facts):
    for dag_id, dag in dagbag_facts["dags"].items():
        assert dag["default_retries"] >= 2, dag_id
        for task_id, task in dag["tasks"].items():
            assert task["on_failure_callback"], f"{dag_id}.{task_id}"
            if task["type"] == "DbtProducerWatcherOperator":
                # Cosmos skips a producer's retry by design; each model's sensor retries by running its model.
                assert task["retries"] == 0
            else:
                assert task["retries"] >= 2, f"{dag_id}.{task_id}"


def test_transform_renders_one_task_per_model_with_its_tests_after_it(dagbag_facts):
    tasks = dagbag_facts["dags"]["adx_transform"]["tasks"]
    assert "dbt.dbt_producer_watcher" in tasks
    assert tasks["dbt.dbt_producer_watcher"]["upstream"] == ["dbt_interval"]
    for model in (
        "fct_impressions",
        "fct_clicks",
        "fct_conversions",
        "agg_campaign_daily",
        "int_conversions_attributed",
    ):
        assert tasks[f"dbt.{model}.test"]["upstream"] == [f"dbt.{model}.run"]
    # source freshness first: the models reading a source wait for its freshness task
    assert "dbt.adserver_impressions_source" in tasks["dbt.base_adserver__impressions_validated.run"]["upstream"]
    assert "dbt.fct_clicks.test" in tasks["dbt.agg_campaign_daily.run"]["upstream"]


def test_transform_checks_the_data_last(dagbag_facts):
    tasks = dagbag_facts["dags"]["adx_transform"]["tasks"]
    # the anomaly tests are not rendered as Cosmos tasks (they would gate the models): check_data runs them
    assert not [task_id for task_id in tasks if "anomaly" in task_id]
    check = tasks["check_data"]
    # after every dbt task succeeded: an all_done leaf would turn a failed run into a successful DAG run
    assert check["trigger_rule"] == "all_success"
    assert check["upstream"] and all(task_id.startswith("dbt.") for task_id in check["upstream"])
    downstream_of_check = [task_id for task_id, task in tasks.items() if "check_data" in task["upstream"]]
    assert downstream_of_check == []


@needs_elementary_packages
def test_with_the_elementary_switch_on_transform_ends_with_its_report(tmp_path):
    project = copy_dbt_project(tmp_path / "project")
    env = airflow_env(tmp_path / "data", ADX_DBT_PROJECT_DIR=str(project), ADX_ELEMENTARY_PACKAGES_DIR=PACKAGES_DIR)
    log = tmp_path / "airflow-test.log"
    assert run([ADX, "elementary", "enable"], env, log).returncode == 0, f"see {log}"

    tasks = load_dagbag_facts(env, log)["dags"]["adx_transform"]["tasks"]

    assert tasks["elementary_report"]["upstream"] == ["check_data"]
    # Elementary's tests are anomaly tests: check_data runs them; Cosmos does not render them as gates
    # (the package's own models, metrics_anomaly_score and the like, are tasks: they only create its tables)
    gates = ("anomaly_volume_", "anomaly_freshness_", "anomaly_schema_", "elementary_volume_", "elementary_schema_")
    assert not [task_id for task_id in tasks if any(name in task_id for name in gates)]


def test_ingest_lands_each_source_in_its_own_task(dagbag_facts):
    tasks = dagbag_facts["dags"]["adx_ingest"]["tasks"]
    assert set(tasks) == {
        "land_impressions",
        "land_bid_requests",
        "land_clicks",
        "land_conversions",
        "publish_refreshed_tables",
    }
    assert len(tasks["publish_refreshed_tables"]["upstream"]) == 4


def test_telemetry_is_off_in_the_airflow_environment(dagbag_facts):
    assert dagbag_facts["cosmos_telemetry"] is False


def test_dag_files_are_thin_and_seen_by_safe_mode():
    for path in Path(DAGS_FOLDER).glob("*.py"):
        text = path.read_text()
        assert "airflow" in text.lower() and "dag" in text.lower(), path  # DagBag safe mode skips files without
        assert len(text.splitlines()) < 100, f"{path} holds work that belongs in the ingestion package"
