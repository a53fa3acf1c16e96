"""The failure callback of every DAG: one structured alert per failed task, for the monitoring path to route.

Each alert is one JSON object, logged on the `adx.alerts` logger (so it is in the task's log in the Airflow UI)
and appended to ADX_DATA_DIR/alerts/airflow.jsonl, which the metrics exporter (ingestion/monitoring/exporter.py) serves
as adx_airflow_task_failures_total and adx_airflow_task_last_failure_timestamp_seconds for the AdxAirflowTaskFailed alert.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestion.settings import Settings

log = logging.getLogger("adx.alerts")


def alerts_file(settings: Settings) -> Path:
    return settings.data_dir / "alerts" / "airflow.jsonl"


def failure_alert(context: dict[str, Any]) -> dict[str, Any]:
    """The alert of a failed task, from the Airflow callback context."""
    task_instance = context.get("task_instance") or context.get("ti")
    exception = context.get("exception")
    return {
        "alert": "airflow_task_failed",
        "severity": "error",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dag_id": getattr(task_instance, "dag_id", None),
        "task_id": getattr(task_instance, "task_id", None),
        "run_id": getattr(task_instance, "run_id", None) or context.get("run_id"),
        "map_index": getattr(task_instance, "map_index", -1),
        "try_number": getattr(task_instance, "try_number", None),
        "error": (f"{type(exception).__name__}: {exception}" if exception else None),
    }


def log_failure_alert(context: dict[str, Any]) -> None:
    """on_failure_callback: log the alert and append it to the alerts file; never raises."""
    try:
        alert = failure_alert(context)
        line = json.dumps(alert, default=str)
        log.error("ALERT %s", line)
        path = alerts_file(Settings())
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except Exception:  # a broken alert must not hide the task's own failure
        log.exception("could not record the failure alert")
