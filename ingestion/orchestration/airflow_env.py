"""The environment Airflow runs in for this project: its home under the data folder, the DAG folder of the repo,
loopback only, and no telemetry (Cosmos's, Scarf's; dbt's anonymous usage stats)."""

from __future__ import annotations

import os

from ingestion.settings import PROJECT_DIR, Settings

DAGS_FOLDER = PROJECT_DIR / "airflow" / "dags"


def airflow_environment(settings: Settings) -> dict[str, str]:
    home = settings.data_dir / "airflow" / "home"
    port = str(settings.airflow_port)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Two cores: a few task processes at a time; the embedded metastore lock serialises the Spark ones anyway.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "SCARF_ANALYTICS": "false",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "ADX_DATA_DIR": str(settings.data_dir),
    }


def airflow_process_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process run in this project's Airflow environment: this process's own, without its
    ADX_* and AIRFLOW* variables (they would point elsewhere), plus airflow_environment and `extra`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ADX_", "AIRFLOW"))}
    return {**inherited, **airflow_environment(settings), **extra}
