"""Analyst query latency on the shared warehouse: the 30-day campaign-performance query through the Spark Thrift
Server on marts.agg_campaign_daily, against the same answer computed from the fact tables. Goal: a median under
1 s on the aggregate.

`python -m bench.analyst --impressions 10000000` (or `python -m bench.run --suite analyst`):

1. A stack of its own in its data folder (default data/bench-analyst): PostgreSQL (metastore), HDFS NameNode and
   DataNode, the Thrift server; no Kafka. Its loopback ports are chosen free on the first run and kept in the
   folder's bench-analyst.json, since the metastore's table locations carry the HDFS port. The stack is stopped at
   the end, also on failure.
2. The build, unless the folder already holds a finished build of the same size and seed (a rerun then measures
   the queries only, and the results say so): `adx generate --days 30 --scale N/30`, `adx load` of impressions,
   clicks and conversions (agg_campaign_daily needs no bid requests), and `adx transform --select
   +agg_campaign_daily` (the seeds and models it needs, fct_impressions, fct_clicks and fct_conversions among
   them, and the tests of those alone: DBT_INDIRECT_SELECTION=cautious, since the default would also run tests
   that read models left out, like the *_rejected views), each as its own process with ADX_WAREHOUSE=stack: the
   loader's Spark runs in its own JVM, dbt in the Thrift server. Wall time of each step; dbt's target/ and logs/
   go to the data folder, not the project's.
3. Through PyHive on one connection (127.0.0.1, the Thrift port): docs/analyst_queries/campaign_performance.sql
   with its date range set to the 30 days (every campaign, and the total row), and the same statement with its
   daily rows computed from fct_impressions, fct_clicks and fct_conversions, as the agg_campaign_daily model
   computes them, instead of read from the aggregate. Everything after those daily rows (totals, ratios, order)
   is the same text, and the first run of each (the warm-up) must return equal results, or the bench fails.
   Then K runs of each (default 7), interleaved (the order alternates), each on a fresh cursor, timed from
   execute to the last row fetched: median, min and max, and the ratio of the medians.
4. Row counts, partitions, files and bytes of the tables, and the partitions each query's scans read (EXPLAIN
   FORMATTED); the 1-minute load average around the timed runs (the machine may be shared).

Writes bench/results/analyst-<date>.json and .md and prints the summary. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import date, timedelta
from pathlib import Path

from bench.measure import dbt_node_seconds
from bench.report import write_results
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.sql_script import sql_statements

ADX = str(Path(sys.executable).parent / "adx")
DEFAULT_DATA_DIR = PROJECT_DIR / "data" / "bench-analyst"
STATE_FILE = "bench-analyst.json"
QUERY_FILE = PROJECT_DIR / "docs" / "analyst_queries" / "campaign_performance.sql"
HOST = "127.0.0.1"
DAYS = 30
START_DATE = date(2026, 11, 1)
DEFAULT_IMPRESSIONS = 10_000_000
DEFAULT_RUNS = 7
GOAL_S = 1.0
SERVICES = ("postgres", "hdfs-namenode", "hdfs-datanode", "ldap", "thrift", "thrift-analyst")
LOADED_SOURCES = ("impressions", "clicks", "conversions")
SELECTOR = "+agg_campaign_daily"
TABLES = ("agg_campaign_daily", "fct_impressions", "fct_clicks", "fct_conversions")
# Inherited variables that would point the build somewhere else than this bench's own stack.
FOREIGN_LOCATIONS = (
    "ADX_WAREHOUSE",
    "ADX_DATA_DIR",
    "ADX_LAKE_URI",
    "ADX_METASTORE_URL",
    "ADX_METASTORE_PASSWORD",
    "ADX_DBT_TARGET",
    "ADX_METASTORE_DB_PORT",
    "ADX_HDFS_PORT",
    "ADX_THRIFT_PORT",
    "DBT_TARGET_PATH",
    "DBT_LOG_PATH",
    "DBT_INDIRECT_SELECTION",
)
# Ports: a block of 7 (HDFS +0..+4, Thrift +5, Postgres +6) from 20000-20999, below the ephemeral range (32768+)
# so that no client connection takes one of them between the check and the bind, and away from the stack's
# defaults and the test brokers' 19600-19999.
PORT_RANGE = range(20000, 21000, 10)

# The rows of marts.agg_campaign_daily for the date range, computed from the fact tables as the model computes
# them (dbt_project/marts/advertising/agg_campaign_daily.sql): counts and sums per day and campaign, amounts
# rounded to 6 decimals per day and campaign, names from dim_campaigns. Put in front of the query file's own CTEs.
# Written the way that reads each fact table once: one row per impression, click and conversion with what it adds
# to its day's measures (union all), then one aggregation. (The model's shape, a union of the day keys left-joined
# to each fact's aggregate, scans every fact twice and plans dynamic partition pruning subqueries on top.)
FACT_CAMPAIGN_DAYS = """\
fct_rows as (
    select
        event_date,
        campaign_id,
        1 as impressions,
        0 as clicks,
        0 as conversions,
        0 as attributed_conversions,
        cost_usd as spend_usd,
        null as revenue_usd
    from marts.fct_impressions
    where event_date between param_start_date and param_end_date
    union all
    select event_date, campaign_id, 0, 1, 0, 0, null, null
    from marts.fct_clicks
    where event_date between param_start_date and param_end_date
    union all
    select
        event_date,
        campaign_id,
        0,
        0,
        1,
        case when is_attributed then 1 else 0 end,
        null,
        case when is_attributed then conversion_value_usd end
    from marts.fct_conversions
    where event_date between param_start_date and param_end_date
),

fct_days as (
    select
        event_date,
        campaign_id,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(attributed_conversions) as attributed_conversions,
        sum(spend_usd) as spend_usd_exact,
        sum(revenue_usd) as revenue_usd_exact
    from fct_rows
    group by event_date, campaign_id
),

fct_campaign_days as (
    select
        fct_days.event_date,
        fct_days.campaign_id,
        campaigns.campaign_name,
        campaigns.advertiser_name,
        fct_days.impressions,
        fct_days.clicks,
        fct_days.conversions,
        fct_days.attributed_conversions,
        cast(round(coalesce(fct_days.spend_usd_exact, 0), 6) as decimal(18, 6)) as spend_usd,
        cast(round(coalesce(fct_days.revenue_usd_exact, 0), 6) as decimal(18, 6)) as revenue_usd
    from fct_days
    left join marts.dim_campaigns as campaigns on fct_days.campaign_id = campaigns.campaign_id
)"""


class BenchError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"bench analyst: {message}", file=sys.stderr, flush=True)


# --- the bench's folder, ports and stack ----------------------------------------------------------------------


def free_ports() -> dict[str, int]:
    """A free block of 9 loopback ports: HDFS (+0..+4), Thrift (+5), Postgres (+6), LDAP (+7), analysts' Thrift (+8)."""
    from ingestion.stack.process import port_in_use

    candidates = list(PORT_RANGE)
    random.shuffle(candidates)
    for base in candidates:
        if not any(port_in_use(HOST, port) for port in range(base, base + 9)):
            return {"hdfs": base, "thrift": base + 5, "metastore_db": base + 6, "ldap": base + 7, "analyst": base + 8}
    raise BenchError(f"no block of 9 free loopback ports in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def stack_settings(data_dir: Path, ports: dict[str, int]) -> Settings:
    """The settings of this bench's stack; explicit arguments win over the environment."""
    return Settings(
        warehouse="stack",
        data_dir=data_dir,
        lake_uri=None,
        metastore_url=None,
        metastore_password=None,
        dbt_target=None,
        metastore_db_port=ports["metastore_db"],
        hdfs_port=ports["hdfs"],
        thrift_port=ports["thrift"],
        ldap_port=ports["ldap"],
        analyst_thrift_port=ports["analyst"],
    )


def adx_environment(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of the `adx` build steps: this bench's stack, dbt's target/ and logs/ in the data folder."""
    environment = {k: v for k, v in os.environ.items() if k not in FOREIGN_LOCATIONS}
    environment.update(
        ADX_WAREHOUSE="stack",
        ADX_DATA_DIR=str(data_dir),
        ADX_METASTORE_DB_PORT=str(ports["metastore_db"]),
        ADX_HDFS_PORT=str(ports["hdfs"]),
        ADX_THRIFT_PORT=str(ports["thrift"]),
        ADX_LDAP_PORT=str(ports["ldap"]),
        ADX_ANALYST_THRIFT_PORT=str(ports["analyst"]),
        DBT_TARGET_PATH=str(data_dir / "dbt" / "target"),
        DBT_LOG_PATH=str(data_dir / "dbt" / "logs"),
        # Only the tests whose parents are all selected: with the default (eager), `--select +agg_campaign_daily`
        # also runs tests that read models it leaves out (row_count_reconciles on the *_rejected views,
        # relationships from stg_rtb__bid_requests), which fail on a warehouse that never built them.
        DBT_INDIRECT_SELECTION="cautious",
    )
    return environment


def read_state(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None


def write_state(data_dir: Path, state: dict) -> None:
    (data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def prepare(data_dir: Path, per_day: int, seed: int) -> tuple[dict, bool]:
    """The folder's state and whether it needs a build. A finished build of the same size and seed is kept; a
    folder of this bench with another size or an unfinished build is emptied (after stopping whatever of its
    stack still runs); any other non-empty folder is refused."""
    from ingestion.stack import down

    wanted = {"impressions_per_day": per_day, "days": DAYS, "seed": seed, "start_date": START_DATE.isoformat()}
    state = read_state(data_dir)
    if state is not None:
        if state.get("status") == "built" and all(state.get(key) == value for key, value in wanted.items()):
            return state, False
        log(f"{data_dir} holds {'another build' if state.get('status') == 'built' else 'an unfinished build'}: removed")
        if "ports" in state:
            down(stack_settings(data_dir, state["ports"]), only=SERVICES)
        shutil.rmtree(data_dir)
    elif data_dir.exists() and any(data_dir.iterdir()):
        raise BenchError(f"{data_dir} is not empty and has no {STATE_FILE}: give an empty or new --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    state = {**wanted, "ports": free_ports(), "status": "building"}
    write_state(data_dir, state)
    return state, True


# --- the build: adx generate, load, transform -----------------------------------------------------------------


def run_step(name: str, args: list[str], environment: dict[str, str], logs_dir: Path) -> dict:
    """Run `adx <args>` with its output in logs_dir/<name>.log; its wall time."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_file = logs_dir / f"{name}.log"
    log(f"{name}: adx {' '.join(args)} (output in {log_file})")
    started = time.perf_counter()
    with log_file.open("w") as out:
        process = subprocess.Popen([ADX, *args], env=environment, cwd=PROJECT_DIR, stdout=out, stderr=out)
        try:
            returncode = process.wait()
        except BaseException:
            process.terminate()
            process.wait(timeout=60)
            raise
    seconds = time.perf_counter() - started
    if returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise BenchError(f"`adx {' '.join(args)}` failed ({returncode}); the end of {log_file}:\n{tail}")
    log(f"{name}: {seconds:.1f} s")
    return {"command": f"adx {' '.join(args)}", "seconds": round(seconds, 1), "load_avg_1m": os.getloadavg()[0]}


def build(data_dir: Path, state: dict) -> dict:
    environment = adx_environment(data_dir, state["ports"])
    logs_dir = data_dir / "logs"
    steps: dict = {}
    steps["generate"] = run_step(
        "generate",
        [
            "generate",
            "--days",
            str(DAYS),
            "--scale",
            str(state["impressions_per_day"]),
            "--seed",
            str(state["seed"]),
            "--start-date",
            state["start_date"],
        ],
        environment,
        logs_dir,
    )
    manifest = json.loads((data_dir / "ground_truth" / "manifest.json").read_text())
    records = {source: counts["records"] for source, counts in manifest["sources"].items()}
    steps["generate"]["records"] = sum(records.values())
    load_args = ["load"]
    for source in LOADED_SOURCES:
        load_args += ["--source", source]
    steps["load"] = run_step("load", load_args, environment, logs_dir)
    steps["load"]["records"] = sum(records[source] for source in LOADED_SOURCES)
    steps["load"]["batches"] = DAYS * len(LOADED_SOURCES)
    steps["transform"] = run_step("transform", ["transform", "--select", SELECTOR], environment, logs_dir)
    steps["transform"].update(dbt_nodes(data_dir / "dbt" / "target" / "run_results.json"))
    return {"records_generated": records, "steps": steps}


def dbt_nodes(run_results_file: Path) -> dict:
    nodes = [{**n, "seconds": round(n["seconds"], 1)} for n in dbt_node_seconds(run_results_file)]
    return {
        "dbt_nodes": len(nodes),
        "dbt_models": sum(1 for n in nodes if n["node"].startswith("model.")),
        "dbt_node_seconds_total": round(sum(n["seconds"] for n in nodes), 1),
        "dbt_slowest_nodes": nodes[:8],
    }


# --- the queries --------------------------------------------------------------------------------------------------


def queries(start: date, end: date) -> tuple[list[str], str, str]:
    """(session set-up statements, the aggregate query, the fact-table query) from the query file."""
    statements = sql_statements(QUERY_FILE.read_text())
    setup, aggregate = statements[:-1], statements[-1]
    setup += [f"set var param_start_date = date'{start.isoformat()}'", f"set var param_end_date = date'{end}'"]
    setup += ["set var param_campaign_id = null"]
    source = "marts.agg_campaign_daily"
    if not aggregate.startswith("with\n") or aggregate.count(source) != 1:
        raise BenchError(f"{QUERY_FILE} no longer reads {source} once in a `with` statement: update bench/analyst.py")
    facts = (
        "with\n\n" + FACT_CAMPAIGN_DAYS + ",\n" + aggregate.removeprefix("with\n").replace(source, "fct_campaign_days")
    )
    return setup, aggregate, facts


def execute(connection, statement: str) -> tuple[float, list[tuple], list[tuple[str, str]]]:
    """Run one statement on a fresh cursor: (seconds from execute to the last row fetched, rows, columns)."""
    cursor = connection.cursor()
    try:
        started = time.perf_counter()
        cursor.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
        seconds = time.perf_counter() - started
        columns = [(d[0], d[1]) for d in cursor.description or []]
    finally:
        cursor.close()
    return seconds, rows, columns


def first_difference(left: list[tuple], right: list[tuple]) -> str:
    if len(left) != len(right):
        return f"{len(left)} rows against {len(right)}"
    for a, b in zip(left, right, strict=True):
        if a != b:
            return f"first different row:\n  agg: {a}\n  fct: {b}"
    return "no difference"


def scans(plan: str) -> list[dict]:
    """The file scans of an EXPLAIN FORMATTED plan: table, file index, and the paths it lists (for a pruned
    partitioned table, the partitions read). As in tests/query_plans.py."""
    text = plan[plan.index("== Physical Plan ==") :] if "== Physical Plan ==" in plan else plan
    text = text.split("===== Subqueries =====")[0]  # their scans (e.g. dynamic partition pruning) repeat the plan's
    found = []
    for match in re.finditer(r"^\(\d+\) Scan \S+ (\S+)\n((?:.+\n?)*)", text, re.MULTILINE):
        attributes = dict(re.findall(r"^(\w+): (.*)$", match.group(2), re.MULTILINE))
        location = attributes.get("Location", "")
        listed = re.search(r"\[(.*)\]$", location)
        more = re.search(r", \.\.\. (\d+) entries\]$", location)
        found.append(
            {
                "table": match.group(1).split(".", 1)[-1] if match.group(1).count(".") > 1 else match.group(1),
                "file_index": location.split(" ", 1)[0],
                "paths": int(more.group(1)) + 1 if more else (1 if listed and listed.group(1) else 0),
                "partition_filters": attributes.get("PartitionFilters", ""),
            }
        )
    return found


def hdfs_summary(settings: Settings, location: str) -> dict:
    """Files and bytes under a table's folder, from the NameNode's WebHDFS (GETCONTENTSUMMARY)."""
    path = urllib.parse.urlparse(location).path
    http_port = settings.hdfs_port + 1
    user = urllib.parse.quote(getpass.getuser())
    url = f"http://{HOST}:{http_port}/webhdfs/v1{urllib.parse.quote(path)}?op=GETCONTENTSUMMARY&user.name={user}"
    with urllib.request.urlopen(url, timeout=30) as response:
        summary = json.load(response)["ContentSummary"]
    return {"files": summary["fileCount"], "bytes": summary["length"]}


def table_facts(connection, settings: Settings, table: str) -> dict:
    """Rows, partitions, files and bytes of marts.<table>."""
    _, rows, _ = execute(connection, f"select count(*) from marts.{table}")
    facts: dict = {"rows": rows[0][0]}
    _, partitions, _ = execute(connection, f"show partitions marts.{table}")
    facts["partitions"] = len(partitions)
    _, described, _ = execute(connection, f"describe formatted marts.{table}")
    location = next((row[1] for row in described if (row[0] or "").strip() == "Location"), None)
    facts["location"] = location
    try:
        facts.update(hdfs_summary(settings, location))
    except Exception as error:  # noqa: BLE001 - the file count is a nice-to-have; say why it is missing
        facts["files_error"] = f"{type(error).__name__}: {error}"
    return facts


def measure_queries(settings: Settings, runs: int) -> dict:
    from pyhive import hive

    start, end = START_DATE, START_DATE + timedelta(days=DAYS - 1)
    setup, aggregate, facts = queries(start, end)
    statements = {"agg": aggregate, "fct": facts}
    # The analysts' server, with the analyst's login: what an analyst's dashboard query runs on.
    analyst_password = (settings.sql_users_dir / "analysts" / "analyst.password").read_text().strip()
    connection = hive.connect(
        host=HOST, port=settings.analyst_thrift_port, username="analyst", password=analyst_password, auth="LDAP"
    )
    try:
        for statement in setup:
            execute(connection, statement)
        result: dict = {
            "date_range": [start.isoformat(), end.isoformat()],
            "query_file": str(QUERY_FILE.relative_to(PROJECT_DIR)),
            "statements": statements,
        }
        # The warm-up: the first run of each, whose results must be equal.
        first = {name: execute(connection, statement) for name, statement in statements.items()}
        (_, agg_rows, agg_columns), (_, fct_rows, fct_columns) = first["agg"], first["fct"]
        if agg_columns != fct_columns or agg_rows != fct_rows:
            columns = f"columns {agg_columns} against {fct_columns}" if agg_columns != fct_columns else ""
            raise BenchError(
                "the two queries do not give the same answer, so their times cannot be compared: "
                f"{columns or first_difference(agg_rows, fct_rows)}"
            )
        if not agg_rows:
            raise BenchError("the campaign-performance query returned no rows: nothing was built for the range")
        log(f"equal answers, {len(agg_rows)} rows; warm-up: agg {first['agg'][0]:.2f} s, fct {first['fct'][0]:.2f} s")
        result["rows"] = len(agg_rows)
        result["columns"] = [name for name, _ in agg_columns]
        result["total_row"] = [str(value) for value in agg_rows[-1]]
        times: dict[str, list[float]] = {"agg": [], "fct": []}
        load_before = os.getloadavg()[0]
        for run in range(runs):
            for name in ("agg", "fct") if run % 2 == 0 else ("fct", "agg"):
                seconds, rows, _ = execute(connection, statements[name])
                if rows != agg_rows:
                    raise BenchError(f"run {run + 1} of the {name} query gave another answer than its warm-up")
                times[name].append(seconds)
            log(f"run {run + 1}/{runs}: agg {times['agg'][-1]:.2f} s, fct {times['fct'][-1]:.2f} s")
        result["load_avg_1m"] = {"before": load_before, "after": os.getloadavg()[0]}
        result["timings"] = {
            name: {
                "warm_up_s": round(first[name][0], 3),
                "median_s": round(statistics.median(values), 3),
                "min_s": round(min(values), 3),
                "max_s": round(max(values), 3),
                "runs_s": [round(v, 3) for v in values],
            }
            for name, values in times.items()
        }
        result["fct_over_agg"] = round(statistics.median(times["fct"]) / statistics.median(times["agg"]), 1)
        result["scans"] = {
            name: scans(execute(connection, f"explain formatted {statement}")[1][0][0])
            for name, statement in statements.items()
        }
        result["tables"] = {table: table_facts(connection, settings, table) for table in TABLES}
    finally:
        connection.close()
    return result


# --- the whole run and its report ---------------------------------------------------------------------------------


def machine(settings: Settings) -> dict:
    import pyspark

    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "spark": pyspark.__version__,
        "thrift_driver_memory": settings.thrift_driver_memory,
        "spark_master": settings.spark_master,
        "shuffle_partitions": settings.spark_shuffle_partitions,
    }


def measure(impressions: int, seed: int, runs: int, data_dir: Path) -> dict:
    from ingestion.stack import down, up

    per_day = -(-impressions // DAYS)  # ceil: at least the impressions asked for
    data_dir = data_dir.resolve()
    state, needs_build = prepare(data_dir, per_day, seed)
    settings = stack_settings(data_dir, state["ports"])
    result: dict = {
        "date": date.today().isoformat(),
        "command": " ".join(["python", *sys.orig_argv[1:]]),
        "impressions_asked": impressions,
        "impressions_per_day": per_day,
        "days": DAYS,
        "impressions_generated": per_day * DAYS,
        "seed": seed,
        "data_dir": str(data_dir),
        "ports": state["ports"],
        "machine": machine(settings),
        "goal_s": GOAL_S,
    }
    started = time.perf_counter()
    try:
        log(f"stack up: {', '.join(SERVICES)} in {settings.stack_dir} (ports {state['ports']})")
        stack_started = time.perf_counter()
        up(settings, timeout=180, only=SERVICES)
        result["stack_up_s"] = round(time.perf_counter() - stack_started, 1)
        if needs_build:
            state["build"] = build(data_dir, state)
            state["status"], state["built_on"] = "built", date.today().isoformat()
            write_state(data_dir, state)
        else:
            log(f"{data_dir} holds a build of {per_day:,} impressions/day x {DAYS} days: build skipped")
        result["build"] = {**state["build"], "skipped": not needs_build, "built_on": state["built_on"]}
        result["queries"] = measure_queries(settings, runs)
    finally:
        log("stack down")
        down(settings, only=SERVICES)
    result["seconds"] = round(time.perf_counter() - started)
    agg_median = result["queries"]["timings"]["agg"]["median_s"]
    result["goal_met"] = agg_median < GOAL_S
    return result


def summary_markdown(result: dict) -> str:
    m, q, b = result["machine"], result["queries"], result["build"]
    t = q["timings"]
    tables = q["tables"]
    lines = [
        f"# Analyst queries through the Thrift server, {result['date']}",
        "",
        f"`{result['command']}`: {result['impressions_generated']:,} impressions generated "
        f"({result['impressions_per_day']:,}/day x {result['days']} days, seed {result['seed']}), "
        f"{tables['fct_impressions']['rows']:,} rows in fct_impressions. {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gb']} GB; Spark {m['spark']}, Thrift server {m['spark_master']}, "
        f"driver {m['thrift_driver_memory']}, {m['shuffle_partitions']} shuffle partitions. "
        f"{result['seconds']} s in all.",
        "",
        f"The 30-day campaign performance ({q['date_range'][0]} to {q['date_range'][1]}, every campaign and the "
        f"total; `{q['query_file']}`) through PyHive, {q['rows']} rows. **agg**: the file as it is, on "
        "marts.agg_campaign_daily; **fct**: the same statement with its daily rows computed from fct_impressions, "
        "fct_clicks and fct_conversions (each read once: union all, one aggregation by day and campaign, as in "
        "the JSON's statements). Both gave equal results. One warm-up run each, then "
        f"{len(t['agg']['runs_s'])} runs each, interleaved, each on a fresh cursor, execute to last row fetched. "
        f"1-minute load average: {q['load_avg_1m']['before']:.2f} before, {q['load_avg_1m']['after']:.2f} after.",
        "",
        f"## Goal: median under {result['goal_s']:g} s on the aggregate: "
        f"{'yes' if result['goal_met'] else '**no**'} ({t['agg']['median_s']:.3f} s)",
        "",
        "| query | reads | warm-up s | median s | min s | max s | partitions read |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, reads in (("agg", "agg_campaign_daily"), ("fct", "fct_impressions, fct_clicks, fct_conversions")):
        read = ", ".join(f"{s['table'].split('.')[-1]} {s['paths']}" for s in q["scans"][name])
        lines.append(
            f"| {name} | {reads} | {t[name]['warm_up_s']:.2f} | {t[name]['median_s']:.3f} | {t[name]['min_s']:.3f} "
            f"| {t[name]['max_s']:.3f} | {read} |"
        )
    lines += [
        "",
        f"fct / agg (medians): **{q['fct_over_agg']:g}x**.",
        "",
        "| table | rows | partitions | files | MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for table, facts in tables.items():
        files = f"{facts['files']:,}" if "files" in facts else "?"
        megabytes = f"{facts['bytes'] / 1e6:,.1f}" if "bytes" in facts else "?"
        lines.append(f"| {table} | {facts['rows']:,} | {facts['partitions']:,} | {files} | {megabytes} |")
    steps = b["steps"]
    lines += [
        "",
        "## Build",
        "",
        (
            f"**Skipped**: the data folder holds the build of {b['built_on']}, whose times these are. "
            if b["skipped"]
            else ""
        )
        + f"Stack up (postgres, HDFS, Thrift) took {result['stack_up_s']} s in this run.",
        "",
        "| step | command | s | records | records/s |",
        "|---|---|---:|---:|---:|",
    ]
    for name, step in steps.items():
        records = step.get("records")
        rate = f"{records / step['seconds']:,.0f}" if records else ""
        lines.append(
            f"| {name} | `{step['command']}` | {step['seconds']:.1f} | {f'{records:,}' if records else ''} | {rate} |"
        )
    transform = steps["transform"]
    batches = steps["load"].get("batches", DAYS * len(LOADED_SOURCES))
    lines += [
        "",
        f"Records: generate = every record written (bid requests included), load = impressions, clicks and "
        f"conversions, in {batches} batches (one per source and day). "
        f"Transform: {transform['dbt_nodes']} dbt nodes ({transform['dbt_models']} models), "
        f"{transform['dbt_node_seconds_total']:.1f} s inside them; the slowest:",
        "",
    ]
    lines += [f"- {n['node']}: {n['seconds']:.1f} s" for n in transform["dbt_slowest_nodes"]]
    return "\n".join(lines) + "\n"


def run(
    impressions: int = DEFAULT_IMPRESSIONS, seed: int = 42, runs: int = DEFAULT_RUNS, data_dir: Path | None = None
) -> dict:
    """Measure, write bench/results/analyst-<date>.json and .md, print the summary."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill stops the stack too (finally)
    try:
        result = measure(impressions, seed, runs, data_dir or DEFAULT_DATA_DIR)
    finally:
        signal.signal(signal.SIGTERM, previous)
    write_results(f"analyst-{result['date']}", result, summary_markdown(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--impressions",
        type=int,
        default=DEFAULT_IMPRESSIONS,
        help=f"Impressions over the {DAYS} days (rounded up to a whole number a day). Default: %(default)s.",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="Timed runs of each query. Default: %(default)s."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="The bench's folder: its stack, landing files and lake; a build of the same size in it is reused.",
    )
    args = parser.parse_args()
    if args.impressions < 100 * DAYS or args.runs < 1:
        parser.error(f"--impressions must be at least {100 * DAYS} (adx generate's --scale is >= 100) and --runs >= 1")
    try:
        run(args.impressions, args.seed, args.runs, args.data_dir)
    except BenchError as error:
        print(f"bench analyst: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
