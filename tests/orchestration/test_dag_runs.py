"""adx_ingest → adx_transform under Airflow's dag.test(), on the embedded warehouse, against a real Kafka broker.

Three arrival days are generated once, into a "source systems" folder; each day is then delivered the way the
sources deliver it (impression log lines shipped and bid requests bridged to this module's own broker, tracking
CSVs dropped in the warehouse's folder) before the DAGs run:

- warehouse A, day by day: ingest → transform for the arrival dates ingest landed → `adx verify` passes; day 2's
  transform rerun gives identical marts; day 3's transform first runs with a model broken (its task fails, the
  models downstream do not run), then, fixed, again (success).
- warehouse B, the three days at once (a catch-up or backfill): one ingest lands them all, one transform rebuilds
  the three arrival dates: the same marts as A's three sequential runs.

Each DAG run is one subprocess (ingestion.orchestration.dag_run): all its tasks share that process's Spark.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from airflow_runner import ADX, airflow_env, migrate_and_build_manifest, run, run_dag
from dbt_project_copy import copy_dbt_project
from ports import free_port_block

from ingestion.orchestration.intervals import interval_of_run
from ingestion.settings import Settings
from ingestion.stack.kafka import KafkaBroker, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = [date(2026, 11, 1) + timedelta(days=n) for n in range(3)]
SCALE = 1_500
# One key for every warehouse of the module, so that their marts (pseudonymous user ids included) compare equal.
PSEUDONYM_KEY = secrets.token_hex(32)
CHECK_SCRIPT = Path(__file__).with_name("check_warehouse.py")
BROKEN_MODEL = "dbt_project/intermediate/attribution/int_clicks_matched_to_impressions.sql"


@dataclass
class Warehouse:
    data_dir: Path
    env: dict[str, str]
    log: Path

    def deliver_tracking_files(self, sources: Path, day: date) -> None:
        for kind in ("clicks", "conversions"):
            folder = f"landing/tracking/{kind}/dt={day.isoformat()}"
            shutil.copytree(sources / folder, self.data_dir / folder)

    def ingest(self, logical_date: str) -> dict:
        outcome = run_dag(self.env, self.log, "adx_ingest", logical_date=logical_date)
        assert outcome["state"] == "success", outcome
        return outcome

    def transform(self, conf: dict) -> dict:
        return run_dag(self.env, self.log, "adx_transform", conf=conf)

    def check(self, as_of: date, name: str) -> dict:
        """`adx verify` as of the date, and the marts' rows."""
        out = self.data_dir / f"check-{name}.json"
        result = run([sys.executable, str(CHECK_SCRIPT), as_of.isoformat(), str(out)], self.env, self.log, timeout=600)
        assert result.returncode == 0, f"check failed; see {self.log}"
        return json.loads(out.read_text())


def transform_conf_from(ingest_outcome: dict) -> dict:
    """The interval the ingest run's asset events give adx_transform (what `dbt_interval` computes from the
    triggering events), as the params of a dag.test() run, which has no triggering events."""
    events = ingest_outcome["asset_events"]
    published = ingest_outcome["returned"]["publish_refreshed_tables"]
    assert {event["asset"] for event in events} == {f"raw.{source}" for source in published}
    interval = interval_of_run({}, [event["extra"] for event in events])
    return {"start_date": str(interval.start), "end_date": str(interval.end)}


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[Settings]:
    """This module's own broker: the session broker's topics hold other tests' records."""
    data_dir = tmp_path_factory.mktemp("adx-dag-kafka")
    port = free_port_block(2, 19600, 19999, "the DAG tests' broker")
    settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=f"127.0.0.1:{port}")
    kafka = KafkaBroker(settings)
    kafka.start()
    try:
        ensure_topics(settings)
        yield settings
    finally:
        kafka.stop()


@pytest.fixture(scope="module")
def source_systems(tmp_path_factory, broker) -> Path:
    """Three arrival days of generated data (and their ground truth), not delivered yet."""
    folder = tmp_path_factory.mktemp("adx-sources")
    env = airflow_env(
        folder,
        ADX_KAFKA_BOOTSTRAP_SERVERS=broker.kafka_bootstrap_servers,
        ADX_KAFKA_SECRETS_DIR=str(broker.resolved_kafka_secrets_dir),
    )
    result = run(
        [ADX, "generate", "--days", "3", "--scale", str(SCALE), "--seed", "11", "--start-date", str(DAYS[0])],
        env,
        folder / "generate.log",
    )
    assert result.returncode == 0, result.stderr
    return folder


def publish(source_systems: Path, broker: Settings, day: date) -> None:
    """Ship the day's impression log lines and bridge its bid requests to the broker."""
    env = airflow_env(
        source_systems,
        ADX_KAFKA_BOOTSTRAP_SERVERS=broker.kafka_bootstrap_servers,
        ADX_KAFKA_SECRETS_DIR=str(broker.resolved_kafka_secrets_dir),
    )
    dt = f"dt={day.isoformat()}"
    for command in (
        [ADX, "ship", "--paths", str(source_systems / "landing" / "impressions" / dt / "*")],
        [ADX, "bridge", "--paths", str(source_systems / "landing" / "rtb" / dt / "*.avro")],
    ):
        result = run(command, env, source_systems / "publish.log", timeout=300)
        assert result.returncode == 0, result.stderr


def new_warehouse(tmp_path_factory, name: str, broker: Settings, source_systems: Path, **env: str) -> Warehouse:
    data_dir = tmp_path_factory.mktemp(name)
    shutil.copytree(source_systems / "ground_truth", data_dir / "ground_truth")
    warehouse = Warehouse(
        data_dir,
        airflow_env(
            data_dir,
            ADX_KAFKA_BOOTSTRAP_SERVERS=broker.kafka_bootstrap_servers,
            ADX_KAFKA_SECRETS_DIR=str(broker.resolved_kafka_secrets_dir),
            ADX_PSEUDONYM_KEY=PSEUDONYM_KEY,
            **env,
        ),
        data_dir / "airflow-test.log",
    )
    migrate_and_build_manifest(warehouse.env, warehouse.log)
    return warehouse


@pytest.fixture(scope="module")
def dbt_project_copy(tmp_path_factory) -> Path:
    """A copy of the dbt project that a test may break and fix."""
    return copy_dbt_project(tmp_path_factory.mktemp("adx-dbt-project"))


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, broker, source_systems, dbt_project_copy) -> dict:
    """Warehouse A: the three days delivered and run one after the other; what each step showed."""
    warehouse = new_warehouse(
        tmp_path_factory, "adx-dag-a", broker, source_systems, ADX_DBT_PROJECT_DIR=str(dbt_project_copy)
    )
    steps: dict = {"warehouse": warehouse}
    for number, day in enumerate(DAYS, start=1):
        publish(source_systems, broker, day)
        warehouse.deliver_tracking_files(source_systems, day)
        ingest = warehouse.ingest(f"{day.isoformat()}T23:00:00")
        conf = transform_conf_from(ingest)
        steps[f"ingest_{number}"], steps[f"conf_{number}"] = ingest, conf
        if number == 3:
            model = dbt_project_copy / BROKEN_MODEL
            good_sql = model.read_text()
            model.write_text("select no_such_column from {{ ref('stg_tracking__clicks') }}\n")
            try:
                steps["broken"] = warehouse.transform(conf)
            finally:
                model.write_text(good_sql)
        steps[f"transform_{number}"] = warehouse.transform(conf)
        steps[f"check_{number}"] = warehouse.check(day, f"day{number}")
        if number == 2:
            steps["transform_2_rerun"] = warehouse.transform(conf)
            steps["check_2_rerun"] = warehouse.check(day, "day2-rerun")
    return steps


def test_each_interval_lands_its_own_arrival_date_and_transforms_it(sequential):
    for number, day in enumerate(DAYS, start=1):
        assert sequential[f"conf_{number}"] == {"start_date": str(day), "end_date": str(day)}
        transform = sequential[f"transform_{number}"]
        assert transform["state"] == "success", transform
        assert transform["returned"]["dbt_interval"]["dbt_vars"] == {
            "run_date": str(day),
            "lookback_days": 3,
            "arrival_start_date": str(day),
        }
    ingest = sequential["ingest_1"]
    landed = {task: value for task, value in ingest["returned"].items() if task.startswith("land_")}
    assert set(landed) == {"land_impressions", "land_bid_requests", "land_clicks", "land_conversions"}
    for summary in landed.values():
        assert summary["records_read"] == summary["records_landed"] + summary["records_quarantined"] > 0
        assert summary["ingest_dates"] == [str(DAYS[0])]
    # one asset event per refreshed raw table, all from the one publishing task (one transform run follows)
    assert sorted(event["asset"] for event in ingest["asset_events"]) == [
        "raw.bid_requests",
        "raw.clicks",
        "raw.conversions",
        "raw.impressions",
    ]
    assert {event["task_id"] for event in ingest["asset_events"]} == {"publish_refreshed_tables"}


def test_marts_match_the_ground_truth_after_every_interval(sequential):
    for number in (1, 2, 3):
        assert sequential[f"check_{number}"]["differences"] == [], f"day {number}"


def test_rerunning_an_interval_gives_identical_marts(sequential):
    assert sequential["transform_2_rerun"]["state"] == "success"
    assert sequential["check_2_rerun"]["marts"] == sequential["check_2"]["marts"]
    assert sum(len(rows) for rows in sequential["check_2"]["marts"].values()) > 0


def test_a_broken_model_fails_its_task_and_stops_what_depends_on_it_then_a_rerun_succeeds(sequential):
    broken = sequential["broken"]
    tasks = {task_id: task["state"] for task_id, task in broken["tasks"].items()}
    assert broken["state"] == "failed"
    assert tasks["dbt.int_clicks_matched_to_impressions.run"] == "failed"
    assert broken["tasks"]["dbt.int_clicks_matched_to_impressions.run"]["try_number"] == 3  # retried twice, alone
    assert tasks["dbt.dbt_producer_watcher"] == "failed"  # its dbt build reported the failure
    # downstream of it: never ran
    downstream = (
        "int_clicks_matched_to_impressions.test",
        "fct_clicks.run",
        "fct_impressions.run",
        "agg_campaign_daily.run",
    )
    for task_id in downstream:
        assert tasks[f"dbt.{task_id}"] == "upstream_failed", task_id
    # beside it: built and tested
    for task_id in ("int_conversions_attributed.test", "fct_conversions.test", "agg_rtb_daily.test", "dim_users.test"):
        assert tasks[f"dbt.{task_id}"] == "success", task_id
    assert sequential["transform_3"]["state"] == "success"  # the rerun after the fix
    assert sequential["check_3"]["differences"] == []


def test_a_backfill_of_three_days_gives_the_marts_of_three_sequential_runs(
    tmp_path_factory, broker, source_systems, sequential
):
    warehouse = new_warehouse(tmp_path_factory, "adx-dag-b", broker, source_systems)
    for day in DAYS:
        warehouse.deliver_tracking_files(source_systems, day)
    conf = transform_conf_from(warehouse.ingest(f"{DAYS[-1].isoformat()}T23:00:00"))
    assert conf == {"start_date": str(DAYS[0]), "end_date": str(DAYS[-1])}
    transform = warehouse.transform(conf)
    assert transform["state"] == "success", transform
    assert transform["returned"]["dbt_interval"]["dbt_vars"] == {
        "run_date": str(DAYS[-1]),
        "lookback_days": 5,
        "arrival_start_date": str(DAYS[0]),
    }
    backfilled = warehouse.check(DAYS[-1], "backfill")
    assert backfilled["differences"] == []
    assert backfilled["marts"] == sequential["check_3"]["marts"]


def test_maintenance_drops_expired_raw_and_quarantine_partitions_and_builds_the_docs(sequential):
    """Last in this module: it drops warehouse A's older raw partitions."""
    warehouse: Warehouse = sequential["warehouse"]
    env = {**warehouse.env, "ADX_RAW_RETENTION_DAYS": "1", "ADX_QUARANTINE_RETENTION_DAYS": "2"}
    # Airflow 3's @daily is a cron trigger: a run's data interval ends at its logical date. The run of
    # DAYS[2] + 1 day keeps raw DAYS[2] (1 day) and quarantine DAYS[1:] (2 days); seen: the run of DAYS[2] dropped
    # raw DAYS[0] only.
    run_of = f"{(DAYS[2] + timedelta(days=1)).isoformat()}T00:00:00"
    outcome = run_dag(env, warehouse.log, "adx_maintenance", logical_date=run_of)
    assert outcome["state"] == "success", outcome
    raw_dropped = outcome["returned"]["raw_retention"]
    quarantine_dropped = outcome["returned"]["vacuum_quarantine"]
    assert raw_dropped["raw.impressions"] == [str(DAYS[0]), str(DAYS[1])]
    assert raw_dropped["raw.clicks"] == [str(DAYS[0]), str(DAYS[1])]
    assert raw_dropped["staging.base_tracking__clicks_validated"] == [str(DAYS[0]), str(DAYS[1])]
    assert quarantine_dropped["raw.quarantine_impressions"] == [str(DAYS[0])]
    docs = Path(outcome["returned"]["dbt_docs"])
    assert (docs / "index.html").is_file() and (docs / "catalog.json").is_file()

    again = run_dag(env, warehouse.log, "adx_maintenance", logical_date=run_of)
    assert again["state"] == "success"
    assert all(dates == [] for dates in again["returned"]["raw_retention"].values())  # a rerun drops nothing more
