"""The shared warehouse end to end: `adx run-stack` (Kafka → landers → raw tables on HDFS, registered in the
Postgres metastore → dbt on the `thrift` target, run by the Spark Thrift Server) against the embedded warehouse
of the session (`built_warehouse`: batch loader, local lake, Derby, dbt in-process) on the same seed. Then what
analysts see through the Thrift server against `adx sql` on the embedded warehouse, and how the stack fails: a
wrong or unreachable metastore, a stopped DataNode, a Thrift server killed mid-run.

Every `adx` runs as its own process, as an operator would run it. The stack runs on free ports in a temporary
data folder for the whole module and is stopped at the end; the tests run in file order and share it.
"""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from ports import free_port_block
from query_plans import assert_no_shuffle_join, assert_prunes_partitions, read_statements

from ingestion.cli import main
from ingestion.pseudonyms import pseudonym_key
from ingestion.raw_encryption import KEY_LIST_CONF
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.stack.ldap import ANALYSTS, group_dn, password_file
from ingestion.stack.thrift import spark_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADX = str(Path(sys.executable).parent / "adx")
DATASET = ["--days", "2", "--scale", "20000", "--seed", "7"]  # the dataset of the built_warehouse fixture
MARTS = ("fct_impressions", "fct_clicks", "fct_conversions", "agg_campaign_daily", "agg_rtb_daily", "dim_users")
QUERIES = PROJECT_DIR / "docs" / "analyst_queries"
# Ports from the base: Postgres, HDFS (5), Thrift, Kafka (2), LDAP, the analysts' Thrift.
PORT_BLOCK = 11


@dataclass(frozen=True)
class Stack:
    env: dict[str, str]  # the environment of an `adx` on this stack
    settings: Settings  # the same, as settings (warehouse=stack)
    run: subprocess.CompletedProcess  # `adx run-stack`


def _adx(args: list[str], env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess:
    result = subprocess.run([ADX, *args], env=env, capture_output=True, text=True, timeout=timeout)
    # The whole output, for when the tail in an assertion message is not enough.
    log = Path(env["ADX_DATA_DIR"]) / "adx-commands.log"
    with log.open("a") as out:
        out.write(f"\n\n$ adx {' '.join(args)}  (exit {result.returncode})\n{result.stdout}\n{result.stderr}")
    return result


def _output(result: subprocess.CompletedProcess) -> str:
    return f"(whole output in ADX_DATA_DIR/adx-commands.log)\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def _free_port_block(size: int = PORT_BLOCK) -> int:
    return free_port_block(size, 22100, 22999, "the test stack")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, warehouse_settings) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("adx-stack")
    base = _free_port_block()
    env = {
        **os.environ,
        "ADX_DATA_DIR": str(data_dir),
        # The embedded path's key, so that both paths give a user the same pseudonym.
        "ADX_PSEUDONYM_KEY": pseudonym_key(warehouse_settings).decode(),
        "ADX_WAREHOUSE": "stack",
        "ADX_METASTORE_DB_PORT": str(base),
        "ADX_HDFS_PORT": str(base + 1),
        "ADX_THRIFT_PORT": str(base + 6),
        "ADX_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{base + 7}",
        "ADX_LDAP_PORT": str(base + 9),
        "ADX_ANALYST_THRIFT_PORT": str(base + 10),
        "ADX_SPARK_DRIVER_MEMORY": "1500m",
        "ADX_THRIFT_DRIVER_MEMORY": "1500m",
    }
    settings = Settings(
        data_dir=data_dir,
        warehouse="stack",
        metastore_db_port=base,
        hdfs_port=base + 1,
        thrift_port=base + 6,
        kafka_bootstrap_servers=f"127.0.0.1:{base + 7}",
        ldap_port=base + 9,
        analyst_thrift_port=base + 10,
    )
    try:
        run = _adx(["run-stack", *DATASET, "--keep-stack"], env)
        yield Stack(env=env, settings=settings, run=run)
    finally:
        _adx(["stack", "down"], env, timeout=300)


def _analyst_password(stack: Stack) -> str:
    return password_file(stack.settings, ANALYSTS, "analyst").read_text().strip()


def _thrift_connect(stack: Stack, user: str, password: str | None, auth: str = "LDAP", *, port: int | None = None):
    """A PyHive session on the analysts' Thrift server, or the server on `port`."""
    from pyhive import hive

    port = port or stack.settings.analyst_thrift_port
    return hive.connect(host="127.0.0.1", port=port, username=user, password=password, auth=auth)


def _thrift_rows(stack: Stack, statements: list[str], *, engineer: bool = False) -> list[tuple]:
    """Run statements in one Thrift session (as dbt and analysts do, through PyHive); the last one's rows. An
    analyst's session on the analysts' server, or (engineer) dbt's login on the engineers' server."""
    if engineer:
        settings = stack.settings
        password = settings.resolved_thrift_password()
        connection = _thrift_connect(stack, settings.thrift_user, password, port=settings.thrift_port)
    else:
        connection = _thrift_connect(stack, "analyst", _analyst_password(stack))
    try:
        cursor = connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        return cursor.fetchall()
    finally:
        connection.close()


def _cell(value) -> float | str:
    if value is None or value in ("", "NULL", "null"):
        return ""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _assert_same_rows(actual: list, expected: list, source: str) -> None:
    """Same rows in the same order; numbers equal to 9 significant digits (PyHive gives floats and Decimals,
    beeline and `adx sql` text)."""
    assert len(actual) == len(expected), f"{source}: {len(actual)} rows, the embedded path {len(expected)}"
    for number, (got, want) in enumerate(zip(actual, expected, strict=True)):
        got_cells, want_cells = [_cell(v) for v in got], [_cell(v) for v in want]
        same = len(got_cells) == len(want_cells) and all(
            math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12) if isinstance(g, float) and isinstance(w, float) else g == w
            for g, w in zip(got_cells, want_cells, strict=True)
        )
        assert same, f"{source}, row {number}: {list(got)}\n  the embedded path: {list(want)}"


def test_the_stack_path_builds_and_verifies_the_marts_of_the_embedded_path(stack, spark, built_warehouse):
    assert stack.run.returncode == 0, _output(stack.run)
    assert "on target thrift" in stack.run.stdout
    assert "marts match the ground truth" in stack.run.stdout
    assert "dead-lettered (malformed_json" in stack.run.stdout  # the shipper's dead letters reached quarantine
    lake = stack.settings.resolved_lake_uri
    assert lake.startswith("hdfs://127.0.0.1:")

    for mart in MARTS:
        embedded = spark.table(f"marts.{mart}")
        from_stack = spark.read.parquet(f"{lake}/marts.db/{mart}")  # the HDFS lake, read by path
        assert embedded.count() > 0, mart
        assert sorted(embedded.dtypes) == sorted(from_stack.dtypes), mart
        from_stack = from_stack.select(*embedded.columns)
        assert embedded.exceptAll(from_stack).count() == 0, f"{mart}: rows of the embedded path missing"
        assert from_stack.exceptAll(embedded).count() == 0, f"{mart}: rows only the stack path has"

    # dbt's sessions had the pseudonymisation pads; another session on the same server does not.
    unset_pad = [("adx.pseudonym.inner_pad", "<undefined>")]
    assert _thrift_rows(stack, ["set adx.pseudonym.inner_pad"], engineer=True) == unset_pad

    # The raw zone on HDFS is encrypted (ingestion/raw_encryption.py); the engineers' server holds its master key,
    # which SET shows redacted (the analysts' server has none: test_the_analysts_server_reads_marts_and_nothing_else).
    raw_files = spark.read.format("binaryFile").load(f"{lake}/raw.db/clicks/*/*/*.parquet").collect()
    assert raw_files and {bytes(row.content[-4:]) for row in raw_files} == {b"PARE"}
    assert _thrift_rows(stack, [f"set {KEY_LIST_CONF}"], engineer=True) == [(KEY_LIST_CONF, "*********(redacted)")]

    # The tables are registered in the Postgres metastore, with their HDFS location.
    described = _thrift_rows(stack, ["describe formatted marts.fct_impressions"])
    [location] = [row[1] for row in described if row[0] == "Location"]
    assert location == f"{lake}/marts.db/fct_impressions"


@pytest.mark.parametrize(
    "query", ["campaign_performance.sql", "funnel_by_demographic.sql", "rtb_win_rate_by_exchange.sql"]
)
def test_beeline_and_pyhive_answer_as_adx_sql_on_the_embedded_path(stack, built_warehouse, query):
    path = QUERIES / query
    embedded_env = {"ADX_DATA_DIR": str(built_warehouse.settings.data_dir), "ADX_WAREHOUSE": "embedded"}
    embedded = CliRunner().invoke(
        main, ["sql", "--file", str(path), "--format", "csv", "--limit", "0"], env=embedded_env
    )
    assert embedded.exit_code == 0, embedded.output
    expected = list(csv.reader(io.StringIO(embedded.stdout)))
    header, expected_rows = expected[0], expected[1:]
    assert expected_rows, f"{query} returns no row on the embedded path"

    pyhive_rows = _thrift_rows(stack, read_statements(path))
    _assert_same_rows(pyhive_rows, expected_rows, "PyHive")

    beeline = subprocess.run(
        [
            str(spark_home() / "bin" / "beeline"),
            "-u",
            f"jdbc:hive2://127.0.0.1:{stack.settings.analyst_thrift_port}/marts",
            "-n",
            "analyst",
            "-w",  # the password file: not on the command line
            str(password_file(stack.settings, ANALYSTS, "analyst")),
            "--outputformat=csv2",
            "--silent=true",
            "-f",
            str(path),
        ],
        env={**stack.env, "SPARK_HOME": str(spark_home())},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert beeline.returncode == 0, beeline.stdout[-3000:] + beeline.stderr[-3000:]
    # The result set of the last statement, from its header line on (beeline also echoes its prompts).
    lines = beeline.stdout.splitlines()
    header_line = max(i for i, line in enumerate(lines) if line.endswith(",".join(header)))
    # Hive 2.3's beeline also writes the (null) results of the `declare` statements and its prompts around the
    # result set, at moments that vary from run to run: keep the lines with the result's number of fields.
    results = csv.reader(line for line in lines[header_line + 1 :] if line and not line.endswith("> "))
    beeline_rows = [row for row in results if len(row) == len(header)]
    _assert_same_rows(beeline_rows, expected_rows, "beeline")


def test_each_thrift_server_takes_only_the_logins_of_its_ldap_group(stack):
    from thrift.transport.TTransport import TTransportException

    password = _analyst_password(stack)
    adx_password = stack.settings.resolved_thrift_password()
    engineers = stack.settings.thrift_port
    for user, secret, port in (("analyst", password, None), ("adx", adx_password, engineers)):  # the controls
        connection = _thrift_connect(stack, user, secret, port=port)
        try:
            cursor = connection.cursor()
            cursor.execute("select current_user()")
            assert cursor.fetchall() == [(user,)]
        finally:
            connection.close()

    refused = [
        ("analyst", password + "x", "LDAP", None),  # a wrong password
        ("analyst", None, "NONE", None),  # no password (PyHive's NONE sends a placeholder)
        ("nobody", password, "LDAP", None),  # no such user
        ("analyst", adx_password, "LDAP", None),  # another user's password
        (f"analyst,{group_dn(ANALYSTS)}", password, "LDAP", None),  # a DN in place of a user name
        ("analyst", password, "LDAP", engineers),  # an analyst on the engineers' server
        ("adx", adx_password, "LDAP", None),  # an engineer on the analysts' server
    ]
    for user, wrong, auth, port in refused:
        with pytest.raises(TTransportException, match="Error validating the login"):
            _thrift_connect(stack, user, wrong, auth, port=port)

    # dbt logged in as adx: its password reached dbt as a DBT_ENV_SECRET_ variable, which dbt keeps out of its files.
    assert adx_password
    files = [
        path
        for folder in (stack.settings.dbt_project_dir / "target", stack.settings.dbt_project_dir / "logs")
        for path in folder.rglob("*")
        if path.is_file()
    ]
    assert files and not [path for path in files if adx_password.encode() in path.read_bytes()]


def test_the_analysts_server_reads_marts_and_nothing_else(stack):
    """Spark 4.2 has no SQL authorization: what keeps an analyst from raw and staging is the analysts' server itself
    (HDFS as another user, a read-only metastore role, no raw key). Each statement here tries to get past it."""
    from pyhive.exc import OperationalError

    count = "select count(*) from marts.agg_campaign_daily"
    [(rows,)] = _thrift_rows(stack, [count])
    assert rows > 0 and [(rows,)] == _thrift_rows(stack, [count], engineer=True)  # the control

    staging = sorted(row[1] for row in _thrift_rows(stack, ["show tables in staging"], engineer=True))
    lake = stack.settings.resolved_lake_uri
    refused_reads = [
        "select count(*) from raw.impressions",
        "select count(*) from raw.quarantine_impressions",
        f"select count(*) from staging.{staging[0]}",
        f"select count(*) from parquet.`{lake}/raw.db/clicks`",  # the files, by path
        f"select count(*) from parquet.`{lake}/intermediate.db`",
    ]
    for statement in refused_reads:
        with pytest.raises(OperationalError, match="Permission denied"):
            _thrift_rows(stack, [statement])

    for statement in (
        "drop table marts.agg_campaign_daily",
        "create table marts.analyst_copy as select * from marts.agg_campaign_daily",
        "insert into marts.dim_campaigns select * from marts.dim_campaigns",
    ):
        with pytest.raises(OperationalError):
            _thrift_rows(stack, [statement])
    assert _thrift_rows(stack, [count], engineer=True) == [(rows,)]
    assert "analyst_copy" not in {row[1] for row in _thrift_rows(stack, ["show tables in marts"], engineer=True)}

    # What the JVM's properties hold (reflect reads them; SET redacts by key name, set or not): no raw key, no
    # writable metastore login. reflect() gives a Java null as the string "null".
    def jvm_property(name: str, engineer: bool = False) -> str:
        statement = f"select reflect('java.lang.System', 'getProperty', '{name}')"
        [(value,)] = _thrift_rows(stack, [statement], engineer=engineer)
        return value

    assert jvm_property(KEY_LIST_CONF, engineer=True).startswith("raw_zone:")  # the control: dbt's server has it
    assert jvm_property(KEY_LIST_CONF) == "null"
    assert jvm_property("spark.hadoop.javax.jdo.option.ConnectionUserName") == stack.settings.metastore_reader_user
    assert (
        jvm_property("spark.hadoop.javax.jdo.option.ConnectionPassword") != stack.settings.resolved_metastore_password()
    )


def test_query_plans_through_the_thrift_server_prune_partitions_and_join_buckets_without_shuffle(stack):
    *declarations, query = read_statements(QUERIES / "campaign_delivery_by_site.sql")
    set_range = ["set var param_start_date = date'2026-11-01'", "set var param_end_date = date'2026-11-01'"]
    [[plan]] = _thrift_rows(stack, [*declarations, *set_range, f"explain formatted {query}"])
    partitions = len(_thrift_rows(stack, ["show partitions marts.fct_impressions"]))
    assert partitions > 2
    assert assert_prunes_partitions(plan, "fct_impressions", ["campaign_id", "event_date"], partitions) == 1

    join = "select count(*) from marts.fct_impressions as i join marts.fct_clicks as c on i.user_id = c.user_id"
    no_broadcast = "set spark.sql.autoBroadcastJoinThreshold=-1"  # else the smaller side is broadcast
    [[plan]] = _thrift_rows(stack, [no_broadcast, f"explain formatted {join}"])
    assert_no_shuffle_join(plan)
    [[control]] = _thrift_rows(
        stack, [no_broadcast, "set spark.sql.sources.bucketing.enabled=false", f"explain formatted {join}"]
    )
    with pytest.raises(AssertionError, match="shuffles its input"):
        assert_no_shuffle_join(control)


def _one_clear_line(result: subprocess.CompletedProcess) -> str:
    """The error an operator sees: one line on stderr, no Java or Python stack trace."""
    assert result.returncode == 1, _output(result)
    assert "Traceback" not in result.stderr and "\tat " not in result.stderr, result.stderr[-3000:]
    return result.stderr


def test_a_wrong_or_unreachable_metastore_is_one_clear_line(stack):
    wrong = _adx(["verify"], {**stack.env, "ADX_METASTORE_PASSWORD": "not-the-password"}, timeout=120)
    assert "ADX_METASTORE_PASSWORD" in _one_clear_line(wrong)

    unused = _free_port_block(1)
    unreachable = _adx(["verify"], {**stack.env, "ADX_METASTORE_DB_PORT": str(unused)}, timeout=120)
    message = _one_clear_line(unreachable)
    assert "ADX_METASTORE_URL" in message and f"127.0.0.1:{unused}" in message


def test_a_stopped_datanode_fails_jobs_clearly_and_after_a_restart_the_pipeline_resumes(stack):
    down = _adx(["stack", "down", "hdfs-datanode"], stack.env, timeout=120)
    assert down.returncode == 0, _output(down)
    try:
        for job in (["verify"], ["transform", "--select", "marts"]):
            failed = _adx(job, stack.env, timeout=300)
            assert "no live DataNode" in _one_clear_line(failed), job
    finally:
        up = _adx(["stack", "up", "hdfs-datanode"], stack.env, timeout=300)
        assert up.returncode == 0, _output(up)

    rebuilt = _adx(["transform", "--select", "marts"], stack.env)
    assert rebuilt.returncode == 0, _output(rebuilt)
    verified = _adx(["verify"], stack.env)
    assert verified.returncode == 0 and "marts match the ground truth" in verified.stdout, _output(verified)


def test_a_thrift_server_killed_mid_run_fails_the_run_leaves_the_marts_whole_and_a_rerun_succeeds(stack):
    pid_file = stack.settings.stack_dir / "thrift" / "thriftserver.pid"
    transform = subprocess.Popen(
        [ADX, "transform", "--select", "marts"],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    try:
        for line in transform.stdout:  # dbt's progress, until the biggest mart starts
            seen.append(line)
            if "START" in line and "marts.fct_impressions" in line:
                time.sleep(2)  # inside the insert overwrite
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                break
        else:
            pytest.fail("dbt never started marts.fct_impressions:\n" + "".join(seen[-40:]))
        output = "".join(seen) + transform.stdout.read()
        assert transform.wait(timeout=600) == 1, output[-4000:]
    finally:
        if transform.poll() is None:
            transform.kill()
    assert "The Spark Thrift Server at" in output and "is not running" in output, output[-4000:]

    # Nothing half-written: the marts are still those of the last complete run, which match the ground truth.
    intact = _adx(["verify"], stack.env)
    assert intact.returncode == 0 and "marts match the ground truth" in intact.stdout, _output(intact)

    up = _adx(["stack", "up", "thrift"], stack.env, timeout=300)
    assert up.returncode == 0, _output(up)
    rerun = _adx(["transform", "--select", "marts"], stack.env)
    assert rerun.returncode == 0, _output(rerun)
    verified = _adx(["verify"], stack.env)
    assert verified.returncode == 0 and "marts match the ground truth" in verified.stdout, _output(verified)
