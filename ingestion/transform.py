"""Runs the dbt project in this process, on the warehouse described by the settings."""

from __future__ import annotations

import json
import os
from datetime import date

from ingestion.settings import PROJECT_DIR, Settings


class DbtError(RuntimeError):
    """A dbt command failed (a model, a test, or dbt itself)."""


def run_dbt(settings: Settings, args: list[str]) -> None:
    """Invoke dbt with `args`; raise DbtError when it does not succeed.

    The embedded target's Spark session lives in this process, so a SparkSession started earlier by
    ingestion.spark.get_spark (same settings) is the one dbt uses.
    """
    os.environ.update(settings.dbt_env())
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR / "profiles")]
    )
    if not result.success:
        reason = f": {result.exception}" if result.exception else ""
        raise DbtError(f"dbt {' '.join(args)} failed{reason}")


def build(settings: Settings, run_date: date | None = None, select: str | None = None) -> None:
    """`dbt build`: seeds, models and their tests. With run_date, incremental marts rebuild that date and the
    lookback before it; without, every date."""
    args = ["build", "--vars", json.dumps({"run_date": run_date.isoformat() if run_date else None})]
    if select:
        args += ["--select", select]
    run_dbt(settings, args)


def generate_docs(settings: Settings) -> None:
    run_dbt(settings, ["docs", "generate"])
