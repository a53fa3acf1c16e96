"""`adx`: the command line of the AdvertiseX warehouse.

Exit codes: 0 success; 1 the data is wrong (verify found differences, a dbt test or model failed, a load did
not reconcile); 2 usage error.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path

import click

from ingestion.console import format_csv, format_table
from ingestion.settings import Settings
from ingestion.stack import SERVICE_NAMES

DEFAULT_START_DATE = "2026-11-01"
# Sources of the streaming path, in landing order: Kafka topics, then tracking-system files.
STREAMED_SOURCES = ("impressions", "bid_requests", "clicks", "conversions")
# dbt commands that never open the warehouse: no Spark session, so no metastore lock.
OFFLINE_DBT_COMMANDS = {"parse", "ls", "list", "deps", "clean", "init", "--help", "-h", "--version"}


def _settings() -> Settings:
    return Settings()


def _spark(settings: Settings):
    from ingestion.spark import get_spark
    from ingestion.stack.preflight import StackError, check_warehouse

    try:
        check_warehouse(settings)
    except StackError as error:
        click.secho(str(error), fg="red", err=True)
        sys.exit(1)
    metastore = "embedded metastore" if settings.metastore_is_derby else "shared metastore"
    click.echo(f"Starting Spark (local, {metastore}, lake {settings.resolved_lake_uri}) ...", err=True)
    return get_spark(settings)


def _parse_date(_ctx, _param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from error


def _step(title: str):
    click.secho(f"\n== {title}", bold=True)
    return time.monotonic()


def _done(started: float) -> None:
    click.echo(f"   done in {time.monotonic() - started:.1f} s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """AdvertiseX ad-data warehouse on the embedded default: Spark in this process, Hive tables and a Derby
    metastore under ADX_DATA_DIR (default ./data).

    The main job is `adx run`, which chains generate, load, transform, report and verify.
    """


@main.command()
@click.option("--days", default=1, show_default=True, type=click.IntRange(1, 366), help="Arrival days to write.")
@click.option("--scale", default=1_000_000, show_default=True, type=click.IntRange(100), help="Impressions per day.")
@click.option("--seed", default=42, show_default=True, help="Random seed: same seed, same bytes.")
@click.option("--start-date", default=DEFAULT_START_DATE, show_default=True, callback=_parse_date)
@click.option(
    "--mess-rate",
    default=0.01,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Share of bad records.",
)
def generate(days: int, scale: int, seed: int, start_date: date, mess_rate: float) -> None:
    """Write a synthetic AdvertiseX dataset and its ground truth to the landing folder.

    Impressions as JSON lines, clicks and conversions as CSV, bid requests as Avro, one dt= folder per arrival
    date, with malformed, duplicated, late and rule-breaking records at MESS_RATE.
    """
    _generate(_settings(), days, scale, seed, start_date, mess_rate)


def _generate(settings: Settings, days: int, scale: int, seed: int, start_date: date, mess_rate: float) -> None:
    from ingestion.generator import generate as generate_dataset

    started = _step(f"generate: {days} day(s) x {scale:,} impressions from {start_date} (seed {seed})")
    summary = generate_dataset(
        settings.data_dir,
        days=days,
        scale=scale,
        seed=seed,
        start_date=start_date,
        mess_rate=mess_rate,
        on_progress=lambda message: click.echo(f"   {message}"),
    )
    rows = [
        (name, summary.records[name], summary.quarantined[name], summary.rejected[name], summary.staged[name])
        for name in summary.records
    ]
    columns = ["source", "records written", "to quarantine", "to reject", "valid events"]
    click.echo(format_table(columns, rows))
    click.echo(f"   {summary.files} files in {settings.landing_dir}, ground truth in {settings.ground_truth_dir}")
    _done(started)


@main.command()
@click.option(
    "--date",
    "dates",
    multiple=True,
    callback=lambda c, p, v: [_parse_date(c, p, d) for d in v],
    help="Arrival date to load (repeatable). Default: every dt= folder waiting.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["impressions", "clicks", "conversions", "bid_requests"]),
    help="Source to load (repeatable). Default: all.",
)
def load(dates: list[date], sources: tuple[str, ...]) -> None:
    """Land the files of the landing folder in the raw tables, quarantining what cannot be parsed.

    One batch per source and arrival date; a batch replaces its partition, and an unchanged batch is skipped.
    Prints records read = landed + quarantined for every batch.
    """
    settings = _settings()
    _load(_spark(settings), settings, dates or None, sources or None)


def _load(spark, settings: Settings, dates, sources) -> None:
    from ingestion.loader import ReconciliationError
    from ingestion.loader import load as load_batches
    from ingestion.monitoring.metrics import recorded_stage

    started = _step("load: landing files -> raw tables")
    try:
        with recorded_stage(settings, "load"):
            results = load_batches(spark, settings, sources, dates)
    except ReconciliationError as error:
        click.secho(f"   load does not reconcile: {error}", fg="red", err=True)
        sys.exit(1)
    rows = [
        (
            r.source,
            r.ingest_date,
            r.files,
            r.records_read,
            r.records_landed,
            r.records_quarantined,
            "unchanged, skipped" if r.skipped else "loaded",
        )
        for r in results
    ]
    columns = ["source", "ingest_date", "files", "read", "landed", "quarantined", "status"]
    click.echo(format_table(columns, rows) if rows else "   nothing waiting in the landing folder")
    _done(started)


@main.command()
@click.option("--follow", is_flag=True, help="Keep tailing the log files until stopped (SIGTERM or Ctrl-C).")
@click.option("--paths", default=None, help="Glob of the log files. Default: the landing folder's impressions.")
def ship(follow: bool, paths: str | None) -> None:
    """Publish impression log lines to Kafka (adx.impressions.v1), as a Fluentd in_tail agent would: resumes at
    the positions saved in ADX_DATA_DIR/streaming, follows rotation, dead-letters lines that are not JSON objects."""
    _ship(_settings(), follow, paths)


def _ship(settings: Settings, follow: bool = False, paths: str | None = None) -> None:
    from ingestion.streaming.shipper import ShipperError, ship_impressions

    started = _step(f"ship: impression logs -> Kafka {settings.kafka_bootstrap_servers}")
    try:
        summary = ship_impressions(settings, follow=follow, paths=paths)
    except ShipperError as error:
        click.secho(f"   {error}", fg="red", err=True)
        sys.exit(1)
    dead = _by_reason(summary.dead_lettered)
    click.echo(
        f"   {summary.files} files, {summary.lines_read:,} lines read = {summary.published:,} published "
        f"+ {summary.dead_lettered_total:,} dead-lettered ({dead}); {summary.lines_per_second:,.0f} lines/s"
    )
    _done(started)


def _by_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in counts.items() if count) or "none"


@main.command()
@click.option("--paths", default=None, help="Glob of the Avro files. Default: every dt=*/*.avro of the RTB folder.")
def bridge(paths: str | None) -> None:
    """Publish each bid request of the RTB drop folder's Avro files to Kafka (adx.bid_requests.v1), Avro-encoded
    with its writer schema's fingerprint in a header; each file once, unreadable files dead-lettered."""
    _bridge(_settings(), paths)


def _bridge(settings: Settings, paths: str | None = None) -> None:
    from ingestion.streaming.rtb_bridge import BridgeError, bridge_bid_requests

    started = _step(f"bridge: RTB Avro files -> Kafka {settings.kafka_bootstrap_servers}")
    try:
        summary = bridge_bid_requests(settings, paths=paths)
    except BridgeError as error:
        click.secho(f"   {error}", fg="red", err=True)
        sys.exit(1)
    dead = _by_reason(summary.dead_lettered)
    click.echo(
        f"   {summary.files} files ({summary.files_skipped} published before), {summary.records_read:,} records "
        f"read = {summary.published:,} published + {sum(summary.dead_lettered.values()):,} dead-lettered ({dead}); "
        f"{summary.records_per_second:,.0f} records/s"
    )
    _done(started)


@main.command()
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(STREAMED_SOURCES),
    help="Source to land (repeatable). Default: all.",
)
@click.option(
    "--continuous",
    is_flag=True,
    help="Keep landing every ADX_STREAM_TRIGGER_SECONDS until stopped, instead of landing what is there and exiting.",
)
def land(sources: tuple[str, ...], continuous: bool) -> None:
    """The streaming path into the raw tables, exactly once: the Kafka topics of impressions and bid requests
    (with their dead-letter topics), and each new clicks or conversions CSV file of the tracking drop folder.

    Progress lives in checkpoints under ADX_DATA_DIR/streaming: a rerun, or a restart after a crash, lands only
    what was not landed before. Prints records read = landed + quarantined for every micro-batch.
    """
    settings = _settings()
    _land(_spark(settings), settings, sources or STREAMED_SOURCES, continuous)


def _land(spark, settings: Settings, sources, continuous: bool) -> None:
    from pyspark.errors import StreamingQueryException

    from ingestion.streaming.lander import STREAMED_SOURCES as TOPIC_SOURCES
    from ingestion.streaming.lander import start_topic_landing
    from ingestion.streaming.pickup import start_file_pickup

    started = _step(f"land{' (continuous)' if continuous else ''}: Kafka topics and tracking files -> raw tables")
    landings = {
        name: (start_topic_landing if name in TOPIC_SOURCES else start_file_pickup)(
            spark, settings, name, continuous=continuous
        )
        for name in sources
    }
    try:
        if continuous:
            click.echo("   landing until interrupted (Ctrl-C)")
            spark.streams.awaitAnyTermination()
        for landing in landings.values():
            landing.wait()
    except StreamingQueryException as error:
        click.secho(f"   landing failed: {str(error).splitlines()[0]}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("   interrupted: stopping after the current micro-batch")
    finally:
        for landing in landings.values():
            if landing.query.isActive:
                landing.query.stop()
    rows = [
        (name, b.batch_number, b.records_read, b.records_landed, b.records_quarantined, b.input_description[:60])
        for name, landing in landings.items()
        for b in landing.batches
    ]
    columns = ["source", "micro-batch", "read", "landed", "quarantined", "input"]
    click.echo(format_table(columns, rows) if rows else "   nothing new to land")
    _done(started)


@main.command()
@click.option(
    "--date",
    "run_date",
    callback=_parse_date,
    help="Data interval end: incremental marts rebuild this date and the lookback. Default: all dates.",
)
@click.option("--select", default=None, help="dbt selection (default: the whole project).")
def transform(run_date: date | None, select: str | None) -> None:
    """`dbt build` (seeds, models, tests) on the embedded target."""
    settings = _settings()
    _transform(_spark(settings), settings, run_date, select)


def _transform(spark, settings: Settings, run_date: date | None, select: str | None = None) -> None:
    from ingestion.loader import ensure_raw_tables
    from ingestion.monitoring.metrics import recorded_stage
    from ingestion.spark import refresh_tables
    from ingestion.stack.preflight import StackError, check_dbt_target, thrift_diagnosis
    from ingestion.transform import DbtError, build

    ensure_raw_tables(spark, settings)  # dbt's sources exist even before a source has delivered anything

    target = settings.resolved_dbt_target
    started = _step(f"transform: dbt build{f' for {run_date}' if run_date else ' (all dates)'} on target {target}")
    try:
        check_dbt_target(settings)
        with recorded_stage(settings, "transform"):
            build(settings, run_date=run_date, select=select)
    except (DbtError, StackError) as error:
        click.secho(f"   {error}", fg="red", err=True)
        if target == "thrift":
            click.secho(f"   {thrift_diagnosis(settings)}", fg="red", err=True)
        sys.exit(1)
    if target != "embedded":
        refresh_tables(spark)  # another JVM rewrote the tables this session may have cached
    _done(started)


@main.command()
@click.option("--docs/--no-docs", default=True, show_default=True, help="Also run `dbt docs generate`.")
def report(docs: bool) -> None:
    """Print the campaign-performance summary of the marts, and generate the dbt docs site."""
    settings = _settings()
    _report(_spark(settings), settings, docs)


def _report(spark, settings: Settings, docs: bool) -> None:
    from ingestion.report import campaign_report
    from ingestion.transform import DbtError, generate_docs

    started = _step("report")
    for title, columns, rows in campaign_report(spark):
        click.secho(f"\n{title}", bold=True)
        click.echo(format_table(columns, rows))
    if docs:
        try:
            generate_docs(settings)
        except DbtError as error:
            click.secho(f"   {error}", fg="red", err=True)
            sys.exit(1)
        click.echo("\n   dbt docs written to target/ (serve with `adx dbt -- docs serve --port 8081`)")
    _done(started)


@main.command()
@click.argument("query", required=False)
@click.option(
    "--file",
    "script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run the statements of a SQL file (e.g. docs/analyst_queries/*.sql) and print the last one's result.",
)
@click.option("--format", "output_format", type=click.Choice(["table", "csv"]), default="table", show_default=True)
@click.option("--limit", default=1000, show_default=True, help="Rows to print at most (0: all).")
def sql(query: str | None, script: Path | None, output_format: str, limit: int) -> None:
    """Run a SQL query (or the statements of --file) on the warehouse and print the result."""
    from pyspark.errors import PySparkException

    from ingestion.sql_script import sql_statements

    if (query is None) == (script is None):
        raise click.UsageError("give either a QUERY or --file")
    statements = sql_statements(script.read_text()) if script else [query]
    if not statements:
        raise click.UsageError(f"{script} has no statement")
    settings = _settings()
    spark = _spark(settings)
    try:
        for statement in statements[:-1]:
            spark.sql(statement)
        frame = spark.sql(statements[-1])
        rows = [tuple(r) for r in (frame.limit(limit) if limit else frame).collect()]
    except PySparkException as error:
        click.secho(f"query failed: {error}", fg="red", err=True)
        sys.exit(1)
    formatter = format_csv if output_format == "csv" else format_table
    click.echo(formatter(frame.columns, rows).rstrip("\n"))


@main.command()
@click.option(
    "--as-of",
    "as_of",
    callback=_parse_date,
    help="Compare with the truth as of this arrival date. Default: the latest date loaded.",
)
def verify(as_of: date | None) -> None:
    """Compare the marts with the generator's ground truth; exit 1 and print the differing cells if any."""
    settings = _settings()
    _verify(_spark(settings), settings, as_of)


def _verify(spark, settings: Settings, as_of: date | None) -> None:
    from ingestion.verify import latest_loaded_date
    from ingestion.verify import verify as compare

    as_of = as_of or latest_loaded_date(spark)
    if as_of is None:
        click.secho("   nothing has been loaded yet: run `adx load` first", fg="red", err=True)
        sys.exit(1)
    started = _step(f"verify: marts against ground truth as of {as_of}")
    try:
        differences = compare(spark, settings, as_of)
    except FileNotFoundError as error:
        click.secho(f"   {error}", fg="red", err=True)
        sys.exit(1)
    if differences:
        for difference in differences[:50]:
            click.echo(f"   {difference}")
        more = " (first 50 shown)" if len(differences) > 50 else ""
        click.secho(f"   {len(differences)} cells differ from the ground truth{more}", fg="red")
        sys.exit(1)
    click.secho("   marts match the ground truth", fg="green")
    _done(started)


@main.command()
@click.option("--days", default=1, show_default=True, type=click.IntRange(1, 366))
@click.option("--scale", default=1_000_000, show_default=True, type=click.IntRange(100))
@click.option("--seed", default=42, show_default=True)
@click.option("--start-date", default=DEFAULT_START_DATE, show_default=True, callback=_parse_date)
@click.option("--mess-rate", default=0.01, show_default=True, type=click.FloatRange(0, 0.5))
def run(days: int, scale: int, seed: int, start_date: date, mess_rate: float) -> None:
    """The main job: generate → load → transform → report → status → verify, in one Spark session."""
    settings = _settings()
    started = time.monotonic()
    _generate(settings, days, scale, seed, start_date, mess_rate)
    spark = _spark(settings)
    _load(spark, settings, None, None)
    _transform(spark, settings, None)
    _report(spark, settings, docs=True)
    _status(spark, settings)
    _verify(spark, settings, None)
    click.secho(f"\nadx run finished in {time.monotonic() - started:.0f} s", bold=True)


@main.command()
@click.option("--user-id", "user_ids", multiple=True, required=True, help="Raw user id to erase (repeatable).")
def erase(user_ids: tuple[str, ...]) -> None:
    """Right to erasure: remove the users' rows from the raw and quarantine tables and, by their pseudonyms, from
    every table dbt built; log it in ops.erasure_log (by pseudonym). Run it while nothing else writes the tables."""
    from ingestion.erasure import erase_users

    settings = _settings()
    spark = _spark(settings)
    started = _step(f"erase: {len(user_ids)} user(s)")
    removals = erase_users(spark, settings, list(user_ids))
    for removal in removals:
        if removal.rows:
            click.echo(f"   {removal.table}: {removal.rows:,} rows removed")
    click.echo(f"   {sum(r.rows for r in removals):,} rows removed from {len(removals)} tables checked")
    _done(started)


@main.command()
def status() -> None:
    """What an operator checks first: stale sources, volume anomalies by campaign, schema changes, failed dbt
    models and tests (their latest result, from ops.dbt_run_results), and every source's newest arrival, last load
    and quarantine. Also writes these figures as Prometheus metrics (ADX_DATA_DIR/metrics/warehouse_status.prom,
    served by `adx stack up exporter`). Exit 1 when something needs attention."""
    settings = _settings()
    if not _status(_spark(settings), settings):
        sys.exit(1)


def _status(spark, settings: Settings) -> bool:
    from ingestion.monitoring.metrics import STATUS_JOB, metric_file, record_status
    from ingestion.monitoring.status import summary

    started = _step("status: sources, dbt results and anomalies")
    current = record_status(spark, settings)
    click.echo(summary(current))
    click.echo(f"   metrics: {metric_file(settings, STATUS_JOB)}")
    _done(started)
    return current.healthy


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("monitor_args", nargs=-1, type=click.UNPROCESSED)
def monitor(monitor_args: tuple[str, ...]) -> None:
    """The topic monitor: per minute, per topic and campaign, volume, dead letters, schema violations and lag as
    Prometheus metrics on http://127.0.0.1:9108/metrics. `adx monitor --help` lists its options."""
    from ingestion.streaming.monitor import main as monitor_main

    monitor_main.main(args=list(monitor_args), prog_name="adx monitor")


@main.command("run-stack")
@click.option("--days", default=1, show_default=True, type=click.IntRange(1, 366))
@click.option("--scale", default=1_000_000, show_default=True, type=click.IntRange(100))
@click.option("--seed", default=42, show_default=True)
@click.option("--start-date", default=DEFAULT_START_DATE, show_default=True, callback=_parse_date)
@click.option("--mess-rate", default=0.01, show_default=True, type=click.FloatRange(0, 0.5))
@click.option("--stop-stack/--keep-stack", default=False, show_default=True, help="Stop the local services at the end.")
def run_stack(days: int, scale: int, seed: int, start_date: date, mess_rate: float, stop_stack: bool) -> None:
    """The main job through the real broker: stack up → generate → ship impressions and bridge bid requests to
    Kafka → land the topics and the tracking files → transform → report → verify. Same marts as `adx run`."""
    settings = _settings().for_stack()
    started = time.monotonic()
    _stack_up(settings)
    try:
        _generate(settings, days, scale, seed, start_date, mess_rate)
        _ship(settings)
        _bridge(settings)
        spark = _spark(settings)
        _land(spark, settings, STREAMED_SOURCES, continuous=False)
        _transform(spark, settings, None)
        _report(spark, settings, docs=True)
        _verify(spark, settings, None)
    finally:
        if stop_stack:
            from ingestion.stack import down

            down(settings)
    click.secho(f"\nadx run-stack finished in {time.monotonic() - started:.0f} s", bold=True)
    click.echo(
        f"SQL: beeline -u jdbc:hive2://127.0.0.1:{settings.analyst_thrift_port}/marts -n analyst -w "
        f"{settings.sql_users_dir / 'analysts' / 'analyst.password'} (docs/analysts.md); "
        "`ADX_WAREHOUSE=stack adx sql ...` and `... adx verify` open the same warehouse."
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt(dbt_args: tuple[str, ...]) -> None:
    """Run any dbt command on the embedded warehouse, e.g. `adx dbt -- test --select marts`."""
    from ingestion.metastore_lock import hold_embedded_metastore
    from ingestion.transform import DbtError, run_dbt

    settings = _settings()
    if not set(dbt_args) & OFFLINE_DBT_COMMANDS:
        hold_embedded_metastore(settings)  # dbt's session target starts Spark in this process
    try:
        run_dbt(settings, list(dbt_args))
    except DbtError as error:
        click.secho(str(error), fg="red", err=True)
        sys.exit(1)


@main.command("airflow-manifest")
def airflow_manifest() -> None:
    """Build the dbt manifest the Airflow DAGs render from (`dbt parse`; no Spark). Rerun after changing the
    dbt project; `make airflow` and the DAG tests run it."""
    from ingestion.orchestration.tasks import build_dbt_manifest
    from ingestion.transform import DbtError

    try:
        path = build_dbt_manifest(_settings())
    except DbtError as error:
        click.secho(str(error), fg="red", err=True)
        sys.exit(1)
    click.echo(f"dbt manifest for Airflow: {path}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("airflow_args", nargs=-1, type=click.UNPROCESSED)
def airflow(airflow_args: tuple[str, ...]) -> None:
    """Run the `airflow` command in this project's Airflow environment (home under ADX_DATA_DIR/airflow, the
    DAGs of airflow/dags, 127.0.0.1 only, telemetry off), e.g. `adx airflow standalone` (what `make airflow`
    runs) or `adx airflow dags test adx_ingest`."""
    from ingestion.orchestration.airflow_env import airflow_environment

    bin_dir = str(Path(sys.executable).parent)
    # `airflow standalone` starts its components as `airflow ...` from the PATH: this venv's.
    path = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    environment = {**os.environ, **airflow_environment(_settings()), "PATH": path}
    Path(environment["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    executable = str(Path(bin_dir) / "airflow")
    os.execve(executable, [executable, *airflow_args], environment)


@main.group()
def elementary() -> None:
    """The Elementary switch (docs/monitoring.md#elementary): the elementary dbt package, its tests of the sources,
    and `edr report`. Off by default: the core project needs neither the package nor the dbt hub."""


@elementary.command("enable")
@click.option(
    "--packages-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="ADX_ELEMENTARY_PACKAGES_DIR",
    help="Install from local copies (DIR/elementary, DIR/dbt_utils, the pinned versions) instead of the dbt hub.",
)
def elementary_enable(packages_dir: Path | None) -> None:
    """Install the pinned elementary and dbt_utils packages (conf/elementary/packages.yml) in the dbt project."""
    from ingestion.elementary import ElementaryError, enable

    settings = _settings()
    try:
        enable(settings, packages_dir)
    except ElementaryError as error:
        click.secho(str(error), fg="red", err=True)
        sys.exit(1)
    click.echo(f"Elementary enabled in {settings.dbt_project_dir}; the next dbt build creates the elementary schema.")


@elementary.command("disable")
def elementary_disable() -> None:
    """Remove the packages from the dbt project; the elementary schema's tables stay."""
    from ingestion.elementary import disable

    disable(_settings())


@elementary.command("report")
@click.option("--days-back", default=7, show_default=True, type=click.IntRange(1))
def elementary_report(days_back: int) -> None:
    """`edr report` on the warehouse, offline and without telemetry: ADX_DATA_DIR/elementary/report.html."""
    from ingestion.elementary import ElementaryError, report

    try:
        path = report(_settings(), days_back)
    except ElementaryError as error:
        click.secho(str(error), fg="red", err=True)
        sys.exit(1)
    click.echo(f"Elementary report: {path}")


@main.group()
def stack() -> None:
    """The local services of the shared warehouse and the streaming path, in start order:

    \b
    postgres        the Hive metastore database    127.0.0.1:ADX_METASTORE_DB_PORT (15432)
    hdfs-namenode   the lake's HDFS NameNode       127.0.0.1:ADX_HDFS_PORT (19820; web UI on +1)
    hdfs-datanode   its DataNode                   127.0.0.1:ADX_HDFS_PORT + 2 to + 4
    ldap            the SQL logins (OpenLDAP)      127.0.0.1:ADX_LDAP_PORT (13389)
    thrift          the engineers' Thrift Server   127.0.0.1:ADX_THRIFT_PORT (10000): dbt, every database
    thrift-analyst  the analysts' Thrift Server    127.0.0.1:ADX_ANALYST_THRIFT_PORT (10001): marts only
    kafka           a single-node broker (KRaft)   ADX_KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:19092)
    exporter        the pipeline's metrics         127.0.0.1:ADX_EXPORTER_PORT (19108)
    prometheus      scrapes them, alert rules      127.0.0.1:ADX_PROMETHEUS_PORT (19090)

    Everything binds to 127.0.0.1; data, logs and pid files are under ADX_DATA_DIR/stack. The services keep
    running after the command returns, until `adx stack down`. ADX_WAREHOUSE=stack points the other commands
    at this warehouse.
    """


_SERVICE_NAMES = click.argument("names", nargs=-1, type=click.Choice(SERVICE_NAMES))


@stack.command("up")
@_SERVICE_NAMES
@click.option("--timeout", default=180, show_default=True, type=click.IntRange(1), help="Seconds to wait per service.")
def stack_up(names: tuple[str, ...], timeout: int) -> None:
    """Start the services (all, or those NAMES) that are not running, wait until they serve requests, and create
    the Kafka topics (ingestion/streaming/topics.py). Running it again changes nothing."""
    _stack_up(_settings(), timeout, names or None)


def _stack_up(settings: Settings, timeout: int = 180, only: tuple[str, ...] | None = None) -> None:
    from ingestion.stack import StackError, up

    started = _step(f"stack up: services under {settings.stack_dir}")
    try:
        result = up(settings, timeout=timeout, only=only)
    except StackError as error:
        click.secho(f"   {error}", fg="red", err=True)
        sys.exit(1)
    click.echo(_services_table(result.services))
    if result.topics:
        click.echo(f"\n   Kafka bootstrap servers: {settings.kafka_bootstrap_servers} (TLS, SCRAM-SHA-512)")
        click.echo(f"   Kafka CA certificate and users' passwords: {settings.resolved_kafka_secrets_dir}")
        rows = [(t.name, t.partitions, f"{t.retention_ms / 86_400_000:g} days", t.action) for t in result.topics]
        click.echo(format_table(["topic", "partitions", "retention", "status"], rows))
    _done(started)


@stack.command("down")
@_SERVICE_NAMES
@click.option(
    "--timeout", default=60, show_default=True, type=click.IntRange(1), help="Seconds to wait for a clean stop."
)
def stack_down(names: tuple[str, ...], timeout: int) -> None:
    """Stop the services (all, or those NAMES; a clean shutdown, killed only after TIMEOUT). Their data stays
    for the next `up`."""
    from ingestion.stack import StackError, down

    started = _step("stack down")
    try:
        stopped = down(_settings(), timeout=timeout, only=names or None)
    except StackError as error:
        click.secho(f"   {error}", fg="red", err=True)
        sys.exit(1)
    for name, clean in stopped:
        click.echo(f"   {name}: {'stopped' if clean else f'killed after {timeout} s'}")
    _done(started)


@stack.command("status")
@_SERVICE_NAMES
def stack_status(names: tuple[str, ...]) -> None:
    """Show whether each service (all, or those NAMES) runs and serves requests; exit 1 if any does not."""
    from ingestion.stack import status

    statuses = status(_settings(), only=names or None)
    click.echo(_services_table(statuses))
    if not all(s.running and s.healthy for s in statuses):
        sys.exit(1)


def _services_table(statuses: list) -> str:
    """One row per service (ingestion.stack.ServiceStatus)."""
    rows = [
        (s.name, "yes" if s.running else "no", "yes" if s.healthy else "no", s.pid or "-", s.address, s.detail)
        for s in statuses
    ]
    return format_table(["service", "running", "healthy", "pid", "address", "detail"], rows)


if __name__ == "__main__":
    main()
