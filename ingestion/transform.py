"""Runs the dbt project in this process, on the warehouse described by the settings."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING

from ingestion.dbt_secrets import dbt_secret_env
from ingestion.settings import PROJECT_DIR, Settings

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult


# dbt's unit tests check the models' logic on fixed rows, not a run's data: they run with the code's tests
# (tests/conftest.py, after every warehouse the suite builds), and production leaves them out as dbt advises, on the
# command line (build) or through dbt's environment variable (the Airflow tasks).
PRODUCTION_EXCLUDED_RESOURCE_TYPE = "unit_test"
PRODUCTION_DBT_ENV = {"DBT_EXCLUDE_RESOURCE_TYPES": PRODUCTION_EXCLUDED_RESOURCE_TYPE}


class DbtError(RuntimeError):
    """A dbt command failed (a model, a test, or dbt itself)."""


def run_dbt(settings: Settings, args: list[str]) -> dbtRunnerResult:
    """Invoke dbt with `args` and return its result; raise DbtError when it does not succeed.

    The embedded target's Spark session lives in this process, so a SparkSession started earlier by
    ingestion.spark.get_spark (same settings) is the one dbt uses.
    """
    from dbt.cli.main import dbtRunner

    with _environment(settings.dbt_env() | dbt_secret_env(settings)):
        result = dbtRunner().invoke(
            [*args, "--project-dir", str(settings.dbt_project_dir), "--profiles-dir", str(PROJECT_DIR / "profiles")]
        )
    if not result.success:
        reason = f": {result.exception}" if result.exception else ""
        raise DbtError(f"dbt {' '.join(args)} failed{reason}")
    return result


def discard_saved_parse(settings: Settings) -> None:
    """Make the next dbt invocation parse the whole project: dbt's partial parse does not notice everything (a
    newly installed package's dispatch targets), and a timed parse should be the full one."""
    (settings.dbt_project_dir / "target" / "partial_parse.msgpack").unlink(missing_ok=True)


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of one dbt invocation, then restore the previous values, so
    that later Settings() in this process do not read this invocation's resolved locations."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build(
    settings: Settings,
    run_date: date | None = None,
    select: str | None = None,
    arrival_start: date | None = None,
    full_refresh: bool = False,
) -> None:
    """`dbt build`: seeds, models and their data tests, without the unit tests. With run_date, incremental models
    rebuild that date and the lookback before it, and the staging base tables re-validate the arrival dates from
    arrival_start (default: run_date - lookback_days) on; without, every date. full_refresh drops and recreates
    every table first."""
    dbt_vars = {"run_date": run_date.isoformat() if run_date else None}
    if arrival_start:
        dbt_vars["arrival_start_date"] = arrival_start.isoformat()
    args = ["build", "--vars", json.dumps(dbt_vars), "--exclude-resource-type", PRODUCTION_EXCLUDED_RESOURCE_TYPE]
    if select:
        args += ["--select", select]
    if full_refresh:
        args.append("--full-refresh")
    run_dbt(settings, args)


def generate_docs(settings: Settings) -> None:
    run_dbt(settings, ["docs", "generate"])
