"""Helpers of the Airflow tests: Airflow runs in subprocesses with the project's Airflow environment (its home in
the test's data folder), never in the pytest process, whose Spark session belongs to another warehouse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion.orchestration.airflow_env import airflow_process_environment
from ingestion.orchestration.dag_run import parse_outcome
from ingestion.settings import PROJECT_DIR, Settings

ADX = str(Path(sys.executable).parent / "adx")


def airflow_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return airflow_process_environment(
        Settings(data_dir=data_dir),
        **{
            "ADX_SPARK_DRIVER_MEMORY": "1g",
            # Failed tasks are retried after seconds, not minutes, so that dag.test() gets through retries quickly.
            "ADX_AIRFLOW_RETRY_DELAY_SECONDS": "1",
            **extra,
        },
    )


def run(command: list[str], env: dict[str, str], log: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run a command with its output appended to `log`; the output is also returned."""
    result = subprocess.run(
        command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout, check=False
    )
    with log.open("a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n{result.stdout}\n{result.stderr}\n")
    return result


def migrate_and_build_manifest(env: dict[str, str], log: Path) -> None:
    for command in ([ADX, "airflow-manifest"], [ADX, "airflow", "db", "migrate"]):
        result = run(command, env, log, timeout=300)
        assert result.returncode == 0, f"{command} failed; see {log}"


def run_dag(env: dict[str, str], log: Path, dag_id: str, logical_date: str | None = None, conf=None) -> dict:
    """One dag.test() run in a subprocess; its outcome (state, seconds, task states and return values)."""
    command = [sys.executable, "-m", "ingestion.orchestration.dag_run", dag_id]
    if logical_date:
        command += ["--logical-date", logical_date]
    if conf is not None:
        command += ["--conf", json.dumps(conf)]
    result = run(command, env, log)
    outcome = parse_outcome(result.stdout)
    assert outcome, f"{dag_id} did not report an outcome (exit {result.returncode}); see {log}"
    return outcome
