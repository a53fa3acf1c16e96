"""Run one DAG once, in this process, with Airflow's `dag.test()`, and print its outcome as one JSON line.

`python -m ingestion.orchestration.dag_run adx_transform [--logical-date ISO] [--conf JSON]`, in the project's
Airflow environment (`adx airflow-run` sets it). The DAG tests and the Airflow bench use it: every task runs in
this one process (one Spark session for all of them), which is what `dag.test()` is for.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

OUTCOME_PREFIX = "DAG_RUN_OUTCOME "


def parse_outcome(stdout: str) -> dict | None:
    """The outcome a `dag_run` process printed (its last one), or None if it printed none."""
    lines = [line for line in stdout.splitlines() if line.startswith(OUTCOME_PREFIX)]
    return json.loads(lines[-1][len(OUTCOME_PREFIX) :]) if lines else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag_id")
    parser.add_argument("--logical-date", type=datetime.fromisoformat, default=None)
    parser.add_argument("--conf", type=json.loads, default=None, help="The run's conf (params), as JSON.")
    options = parser.parse_args(argv)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    if bag.import_errors:
        print(json.dumps({"import_errors": bag.import_errors}))
        return 2
    dag = bag.dags[options.dag_id]
    kwargs = {"run_conf": options.conf}
    if options.logical_date is not None:
        kwargs["logical_date"] = options.logical_date.replace(tzinfo=options.logical_date.tzinfo or UTC)
    started = time.monotonic()
    run = dag.test(**kwargs)
    seconds = time.monotonic() - started
    outcome = {
        "dag_id": options.dag_id,
        "run_id": run.run_id,
        "state": str(run.state),
        "seconds": round(seconds, 2),
        "tasks": {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in run.get_task_instances()},
        "returned": _return_values(options.dag_id, run.run_id),
        "asset_events": _asset_events(options.dag_id, run.run_id),
    }
    print(OUTCOME_PREFIX + json.dumps(outcome), flush=True)
    return 0 if outcome["state"] == "success" else 1


def _return_values(dag_id: str, run_id: str) -> dict:
    """The tasks' return values (XCom `return_value`) of the run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value")).all()
        return {row.task_id: XComModel.deserialize_value(row) for row in rows}


def _asset_events(dag_id: str, run_id: str) -> list[dict]:
    """The asset events the run's tasks emitted: asset name, task and extra."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(AssetModel.name, AssetEvent.source_task_id, AssetEvent.extra)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
    )
    with create_session() as session:
        return [{"asset": name, "task_id": task_id, "extra": extra} for name, task_id, extra in session.execute(query)]


if __name__ == "__main__":
    sys.exit(main())
