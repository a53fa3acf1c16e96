"""The Airflow dbt tasks leave dbt's unit tests out through the environment Cosmos gives them (DBT_EXCLUDE_RESOURCE_TYPES,
ingestion/transform.py): dbt, run on this project under that environment, selects every other node and no unit
test."""

from __future__ import annotations

import json

import pytest

from ingestion.orchestration.dbt_cosmos import cosmos_task_group_kwargs
from ingestion.orchestration.tasks import manifest_dir
from ingestion.settings import Settings
from ingestion.transform import run_dbt

pytestmark = pytest.mark.integration


def _listed_resource_types(settings) -> list[str]:
    """The resource type of every node `dbt ls` selects in the project."""
    result = run_dbt(settings, ["ls", "--output", "json", "--output-keys", "resource_type", "--quiet"])
    return [json.loads(line)["resource_type"] for line in result.result]


def test_the_airflow_tasks_environment_leaves_only_the_unit_tests_out(warehouse_settings, monkeypatch, tmp_path):
    airflow_settings = Settings(data_dir=tmp_path)
    manifest = manifest_dir(airflow_settings) / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")  # the options only: no task is rendered here
    task_environment = cosmos_task_group_kwargs(airflow_settings)["operator_args"]["env"]

    everything = _listed_resource_types(warehouse_settings)
    for name, value in task_environment.items():
        monkeypatch.setenv(name, value)  # run_dbt sets the warehouse's own locations over these
    in_a_task = _listed_resource_types(warehouse_settings)

    assert everything.count("unit_test") == 5
    assert sorted(in_a_task) == sorted(kind for kind in everything if kind != "unit_test")
