"""The Elementary switch on dbt-spark (session target, parquet tables): the package's models all build, its tests
run, and its tables stay free of duplicates through both of its artifact upload modes (diff, replace); `edr report`
writes the report offline, talking to nothing but 127.0.0.1.

The packages come from local copies of the pinned versions (tests/elementary_project.py); without them the tests
skip. The project is a copy of this repository's dbt project, so enabling Elementary does not touch the working tree.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from adx_process import adx
from dbt_project_copy import copy_dbt_project
from elementary_project import needs_elementary_packages
from incidents import drop_campaign_impressions, impressions_by_campaign

from ingestion.settings import Settings

EDR = Path(sys.executable).parent / "edr"
OUTBOUND_AUDIT = Path(__file__).parent / "outbound_audit"

pytestmark = [
    pytest.mark.integration,
    needs_elementary_packages,
    pytest.mark.skipif(not EDR.is_file(), reason="no edr CLI: pip install -r requirements-elementary.txt"),
]

LAST_DAY = date(2026, 11, 6)
# Elementary measures against the run's start time; this one puts the six arrival days just behind it.
ELEMENTARY_VARS = {"custom_run_started_at": "2026-11-07T00:00:00", "days_back": 7, "min_training_set_size": 3}
ELEMENTARY_TESTS = {
    *(f"elementary_volume_{table}" for table in ("adserver_impressions", "rtb_bid_requests", "tracking_clicks")),
    "elementary_volume_tracking_conversions",
    *(
        f"elementary_volume_{t}_by_campaign"
        for t in ("adserver_impressions", "tracking_clicks", "tracking_conversions")
    ),
    *(f"elementary_schema_{t}" for t in ("adserver_impressions", "rtb_bid_requests", "tracking_clicks")),
    "elementary_schema_tracking_conversions",
}
CHANGED_DESCRIPTION = "One row per campaign (description changed between two runs)."


def query(env: dict[str, str], sql: str) -> list[dict[str, str]]:
    done = adx(env, "sql", "--format", "csv", "--limit", "0", sql)
    assert done.returncode == 0
    return list(csv.DictReader(io.StringIO(done.stdout)))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Six arrival days (the biggest campaign's impressions halved on the last), loaded; Elementary enabled; then
    three dbt invocations: a full build, a test run after a model's description changed (diff upload: a row
    deleted and inserted), and a run with cache_artifacts off (replace upload)."""
    root = tmp_path_factory.mktemp("adx-elementary")
    project = copy_dbt_project(root / "project")
    settings = Settings(data_dir=root / "data", dbt_project_dir=project)
    env = {
        **os.environ,
        "ADX_DATA_DIR": str(settings.data_dir),
        "ADX_DBT_PROJECT_DIR": str(project),
        "ADX_SPARK_DRIVER_MEMORY": "1g",
    }
    assert adx(env, "generate", "--days", "6", "--scale", "2000", "--seed", "11").returncode == 0
    campaign, _ = impressions_by_campaign(settings.landing_dir, LAST_DAY).most_common(1)[0]
    drop_campaign_impressions(settings.landing_dir, LAST_DAY, campaign)
    assert adx(env, "load").returncode == 0
    assert adx(env, "elementary", "enable").returncode == 0  # from ADX_ELEMENTARY_PACKAGES_DIR

    runs = [adx(env, "dbt", "--", "build", "--vars", json.dumps(ELEMENTARY_VARS))]
    marts_yml = project / "dbt_project" / "marts" / "_marts__models.yml"
    original = "One row per campaign of the campaigns seed, with its advertiser."
    marts_yml.write_text(marts_yml.read_text().replace(original, CHANGED_DESCRIPTION))
    runs.append(adx(env, "dbt", "--", "test", "--select", "tag:elementary", "--vars", json.dumps(ELEMENTARY_VARS)))
    runs.append(adx(env, "dbt", "--", "run", "--select", "dim_campaigns", "--vars", '{"cache_artifacts": false}'))
    return settings, env, campaign, runs


def test_every_elementary_model_and_test_runs_on_spark(warehouse):
    settings, env, _, runs = warehouse
    assert [run.returncode for run in runs] == [0, 0, 0]
    manifest = json.loads((settings.dbt_project_dir / "target" / "manifest.json").read_text())
    models = {
        n["name"]
        for n in manifest["nodes"].values()
        if n["package_name"] == "elementary" and n["resource_type"] == "model"
    }
    tests = {
        n["name"] for n in manifest["nodes"].values() if "elementary" in n["tags"] and n["resource_type"] == "test"
    }
    assert len(models) >= 30 and tests == ELEMENTARY_TESTS
    built = {row["tableName"] for row in query(env, "show tables in elementary")}
    assert models <= built
    names = ", ".join(f"'{name}'" for name in sorted(ELEMENTARY_TESTS))
    results = query(
        env,
        "select test_name, status, count(*) as results, count(distinct id) as ids "
        f"from elementary.elementary_test_results where test_name in ({names}) group by test_name, status",
    )
    # each test's result of both invocations that ran the tests, recorded once each
    assert {row["test_name"] for row in results} == ELEMENTARY_TESTS
    assert all(row["results"] == row["ids"] == "2" for row in results), results
    assert {row["status"] for row in results} <= {"pass", "warn"}


def test_artifact_tables_hold_each_node_once_through_both_upload_modes(warehouse):
    settings, env, _, _ = warehouse
    manifest = json.loads((settings.dbt_project_dir / "target" / "manifest.json").read_text())
    model_ids = {key for key, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    test_ids = {key for key, node in manifest["nodes"].items() if node["resource_type"] == "test"}
    [counts] = query(
        env,
        "select (select count(*) from elementary.dbt_models) as model_rows, "
        "(select count(distinct unique_id) from elementary.dbt_models) as models, "
        "(select count(*) from elementary.dbt_tests) as test_rows, "
        "(select count(distinct unique_id) from elementary.dbt_tests) as tests, "
        "(select count(*) from elementary.dbt_invocations) as invocation_rows, "
        "(select count(distinct invocation_id) from elementary.dbt_invocations) as invocations, "
        "(select count(*) from elementary.dbt_run_results) as result_rows, "
        "(select count(distinct model_execution_id) from elementary.dbt_run_results) as results, "
        "(select max(description) from elementary.dbt_models where name = 'dim_campaigns') as description",
    )
    assert int(counts["model_rows"]) == int(counts["models"]) == len(model_ids)
    assert int(counts["test_rows"]) == int(counts["tests"]) == len(test_ids)
    assert int(counts["invocation_rows"]) == int(counts["invocations"]) == 3
    assert int(counts["result_rows"]) == int(counts["results"]) > 0
    assert counts["description"] == CHANGED_DESCRIPTION  # the diff upload replaced the changed model's row


def test_volume_metrics_match_the_raw_table(warehouse):
    _, env, campaign, _ = warehouse
    rows = query(
        env,
        "select m.bucket_start, max(m.metric_value) as measured, max(r.landed) as landed "
        "from elementary.data_monitoring_metrics m join ("
        "  select cast(_ingest_date as timestamp) as day, count(*) as landed from raw.impressions "
        f"  where campaign_id = '{campaign}' group by 1"
        ") r on m.bucket_start = r.day "
        f"where m.full_table_name like '%IMPRESSIONS' and m.metric_name = 'dimension' and m.dimension_value = '{campaign}' "
        "group by m.bucket_start order by m.bucket_start",
    )
    assert len(rows) == 6
    assert all(float(row["measured"]) == float(row["landed"]) for row in rows), rows
    assert float(rows[-1]["measured"]) < 0.6 * float(rows[-2]["measured"])  # the halved last day


def test_edr_report_runs_offline_without_telemetry(warehouse, tmp_path):
    settings, env, _, _ = warehouse
    outbound_log = tmp_path / "outbound.log"
    audited = {**env, "PYTHONPATH": str(OUTBOUND_AUDIT), "ADX_OUTBOUND_LOG": str(outbound_log)}

    done = adx(audited, "elementary", "report", "--days-back", "60")

    assert done.returncode == 0
    report = report_data((settings.data_dir / "elementary" / "report.html").read_text())
    reported_tests = {test["name"] for test in report["tests"].values()}  # by unique_id
    assert reported_tests >= ELEMENTARY_TESTS
    assert report["tracking"] is None  # no analytics key or anonymous ids in the page
    lines = outbound_log.read_text().splitlines()
    assert any("127.0.0.1" in line for line in lines)  # the audit saw the local connections (Spark's gateway)
    outbound = [line for line in lines if not _local(line)]
    assert outbound == [], outbound


def test_the_outbound_audit_sees_a_lookup_of_pypi(tmp_path):
    """The audit can fail: the version check edr would make (without our config) is logged."""
    outbound_log = tmp_path / "outbound.log"
    env = {**os.environ, "PYTHONPATH": str(OUTBOUND_AUDIT), "ADX_OUTBOUND_LOG": str(outbound_log)}
    code = "from elementary.utils.package import get_latest_package_version as v; v()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert "resolve 'pypi.org'" in outbound_log.read_text()


def report_data(html: str) -> dict:
    """The data edr embeds in its single-page report (base64 JSON)."""
    encoded = re.search(r"atob\('([A-Za-z0-9+/=]+)'\)", html)
    assert encoded, "no embedded report data"
    return json.loads(base64.b64decode(encoded.group(1)))


def _local(line: str) -> bool:
    """A loopback address or host, or a Unix socket (whose address is a path, not a (host, port) tuple)."""
    return line.startswith("connect '") or any(host in line for host in ("'127.0.0.1'", "'localhost'", "'::1'"))
