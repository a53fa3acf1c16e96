"""`make bench`: wall time and throughput of generate, load and `dbt build` on the embedded warehouse, and the fixed
cost of a build (JVM start, dbt parse, per-node overhead: a run at a tiny size).

Each size runs in its own process (the embedded Derby metastore admits one JVM) on a fresh data folder.
Writes bench/results/<date>.json and <date>.md and prints the summary. Never part of `make test`.
Other suites: streaming (bench/streaming.py), analyst (bench/analyst.py), airflow (bench/airflow.py), encryption
(bench/encryption.py) and kafka-security (bench/kafka_security.py); `--suite all` runs them all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench import incremental
from bench.mart_aggregates import differences
from bench.measure import dbt_node_seconds, run_json
from bench.memory import PeakMemory
from bench.plots import incremental_plot, throughput_plot
from bench.report import RESULTS_DIR, write_results
from ingestion.settings import PROJECT_DIR, Settings

# DuckDB gets what the Spark driver's JVM may use in all (3g heap plus overhead), so neither has more memory.
DUCKDB_MEMORY_LIMIT = "4GB"


def build_settings(data_dir: Path) -> Settings:
    """The full-build suite's warehouse: raw unencrypted, because the DuckDB peer reads the raw Parquet files and
    has no client for Spark's Parquet encryption keys (ingestion/raw_encryption.py). dbt and the PySpark job then
    skip the decryption of raw that a production build pays (its cost: docs/security.md)."""
    return Settings(data_dir=data_dir, raw_encryption=False)


def measure_one(size: int, days: int, seed: int, data_dir: Path) -> dict:
    """Generate, load and build one dataset in this process; return the timings and each stage's peak memory."""
    from ingestion.generator import generate
    from ingestion.loader import load
    from ingestion.spark import get_spark
    from ingestion.transform import build, discard_saved_parse, run_dbt
    from ingestion.verify import verify

    settings = build_settings(data_dir)
    timings: dict = {"size": size, "days": days}
    peaks = PeakMemory()

    started = time.perf_counter()
    with peaks.stage("generate"):
        summary = generate(settings.data_dir, days=days, scale=size, seed=seed)
    timings["generate_s"] = time.perf_counter() - started
    timings["records"] = sum(summary.records.values())

    started = time.perf_counter()
    spark = get_spark(settings)
    spark.sql("select 1").collect()
    timings["jvm_start_s"] = time.perf_counter() - started

    started = time.perf_counter()
    with peaks.stage("load"):
        load(spark, settings)
    timings["load_s"] = time.perf_counter() - started

    # A full parse, as a fresh checkout or a changed project pays it; the build after it parses partially.
    discard_saved_parse(settings)
    started = time.perf_counter()
    run_dbt(settings, ["parse"])
    timings["dbt_parse_s"] = time.perf_counter() - started

    started = time.perf_counter()
    with peaks.stage("dbt_build"):
        build(settings)
    timings["dbt_build_s"] = time.perf_counter() - started
    timings |= build_node_seconds()
    timings["verified"] = verify(spark, settings, as_of=summary.arrival_dates[-1]) == []
    spark.stop()
    timings["peak_rss_bytes"] = peaks.bytes  # this process and the Spark JVM, per stage
    return timings


def build_node_seconds() -> dict:
    """The last build's node times. dbt runs one node at a time (threads: 1), so they add up: models and seeds
    apart from tests."""
    nodes = dbt_node_seconds()
    return {
        "dbt_nodes": len(nodes),
        "dbt_model_seconds": sum(n["seconds"] for n in nodes if n["node"].startswith(("model.", "seed."))),
        "dbt_test_seconds": sum(n["seconds"] for n in nodes if n["node"].startswith("test.")),
        "dbt_node_seconds_total": sum(n["seconds"] for n in nodes),
        "dbt_slowest_nodes": nodes[:10],
    }


def measure_rebuild(data_dir: Path) -> dict:
    """A further round on the warehouse measure_one built, in a process of its own: `dbt build --full-refresh` of
    the same raw tables, timed as the first build is (the Spark session started beforehand)."""
    from ingestion.spark import get_spark
    from ingestion.transform import build

    settings = build_settings(data_dir)
    spark = get_spark(settings)
    spark.sql("select 1").collect()
    started = time.perf_counter()
    build(settings, full_refresh=True)
    timings = {"dbt_build_s": time.perf_counter() - started} | build_node_seconds()
    spark.stop()
    return timings


def fixed_cost_markdown(fixed: dict, results: list[dict]) -> list[str]:
    """At a size this small, `dbt build` is nearly all fixed cost (dbt's per-node work, Spark planning and job
    start-up): its time, against each measured size's build, says how much of that build is not work on data."""
    per_node = fixed["dbt_build_s"] / fixed["dbt_nodes"]
    lines = [
        "",
        f"Fixed cost, measured as the same run at {fixed['size']:,} impressions/day: JVM and Spark session start "
        f"{fixed['jvm_start_s']:.1f} s, dbt full parse {fixed['dbt_parse_s']:.1f} s, dbt build "
        f"{fixed['dbt_build_s']:.1f} s ({fixed['dbt_nodes']} nodes, {per_node:.2f} s a node).",
    ]
    if not results:
        return lines
    lines += [
        "",
        "| impressions/day | dbt build s | of which fixed s | fixed share | work on data s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        share = fixed["dbt_build_s"] / r["dbt_build_s"]
        lines.append(
            f"| {r['size']:,} | {r['dbt_build_s']:.1f} | {fixed['dbt_build_s']:.1f} | {share:.0%} "
            f"| {r['dbt_build_s'] - fixed['dbt_build_s']:.1f} |"
        )
    return lines


def peers_markdown(results: list[dict]) -> list[str]:
    """dbt against the hand-written PySpark job and DuckDB on the same raw tables; a peer's time counts only when its
    marts equal dbt's."""
    lines = [
        "",
        "dbt against its peers on the same input: the hand-written PySpark job (bench/pyspark_peer.py, one session, "
        "no dbt) and DuckDB running the project's compiled SQL (bench/duckdb_peer.py, as many threads as Spark's "
        f"cores, memory limit {DUCKDB_MEMORY_LIMIT}). Build times exclude JVM start; dbt models = the model and seed "
        "nodes of the same build, without its tests. End to end = JVM and session start (+ dbt's full parse) + build.",
        "",
        "| impressions/day | events | dbt build s | dbt models s | PySpark s | DuckDB s | events/s dbt | events/s "
        "PySpark | events/s DuckDB | dbt/PySpark | dbt models/PySpark | dbt/DuckDB | end to end dbt/DuckDB "
        "| marts equal (groups) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for r in results:
        peers, events = r["peers"], r["records"]
        pyspark_s, duckdb_s = peers["pyspark"]["seconds"], peers["duckdb"]["seconds"]
        end_to_end = r["jvm_start_s"] + r["dbt_parse_s"] + r["dbt_build_s"]
        equal = [name for name in ("pyspark", "duckdb") if not peers[name]["differences"]]
        verdict = "both" if len(equal) == 2 else (", ".join(equal) or "neither") + " only"
        lines.append(
            f"| {r['size']:,} | {events:,} | {r['dbt_build_s']:.1f} | {r['dbt_model_seconds']:.1f} "
            f"| {pyspark_s:.1f} | {duckdb_s:.1f} | {events / r['dbt_build_s']:,.0f} | {events / pyspark_s:,.0f} "
            f"| {events / duckdb_s:,.0f} | {r['dbt_build_s'] / pyspark_s:.2f} "
            f"| {r['dbt_model_seconds'] / pyspark_s:.2f} | {r['dbt_build_s'] / duckdb_s:.1f} "
            f"| {end_to_end / duckdb_s:.1f} | {verdict} ({peers['groups_compared']:,}) |"
        )
    for r in results:
        for name in ("pyspark", "duckdb"):
            for difference in r["peers"][name]["differences"]:
                lines.append(f"- {r['size']:,}, {name} differs: {difference}")
    return lines


ROUND_COLUMNS = (
    "dbt_build_s",
    "dbt_model_seconds",
    "dbt_test_seconds",
    "pyspark_s",
    "duckdb_s",
    "dbt/pyspark",
    "dbt_models/pyspark",
    "dbt/duckdb",
)


def round_figures(this_round: dict) -> dict:
    """One round's times and ratios; a peer's time is None when its marts differ from dbt's (or it did not run)."""
    figures = {key: this_round[key] for key in ("dbt_build_s", "dbt_model_seconds", "dbt_test_seconds")}
    peers = this_round.get("peers", {})
    for name in ("pyspark", "duckdb"):
        peer = peers.get(name)
        figures[f"{name}_s"] = peer["seconds"] if peer and not peer["differences"] else None
    pyspark_s, duckdb_s = figures["pyspark_s"], figures["duckdb_s"]
    figures["dbt/pyspark"] = figures["dbt_build_s"] / pyspark_s if pyspark_s else None
    figures["dbt_models/pyspark"] = figures["dbt_model_seconds"] / pyspark_s if pyspark_s else None
    figures["dbt/duckdb"] = figures["dbt_build_s"] / duckdb_s if duckdb_s else None
    return figures


def median_figures(rounds: list[dict]) -> dict:
    """Per column, the median over the rounds that have it: each ratio is its rounds' median, not a ratio of
    medians, because the two sides of a round ran on the machine in the same state."""
    medians = {}
    for column in ROUND_COLUMNS:
        values = [figures[column] for figures in rounds if figures[column] is not None]
        medians[column] = statistics.median(values) if values else None
    return medians


def rounds_markdown(results: list[dict]) -> list[str]:
    """The sizes measured in more than one round: every round, and the medians."""
    repeated = [r for r in results if r.get("rebuilds")]
    if not repeated:
        return []
    lines = [
        "",
        "Rounds on one warehouse per size: round 1 is the build above, each further round a `dbt build "
        "--full-refresh` of the same raw tables followed by the peers, in turn. A peer's time counts only in the "
        "rounds whose marts equal dbt's (-: differs or not run).",
        "",
        "| impressions/day | round | dbt build s | dbt models s | dbt tests s | PySpark s | DuckDB s | dbt/PySpark "
        "| dbt models/PySpark | dbt/DuckDB |",
        "|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in repeated:
        rounds = [round_figures(this_round) for this_round in (r, *r["rebuilds"])]
        labelled = [(str(number), figures) for number, figures in enumerate(rounds, 1)]
        for label, figures in [*labelled, ("**median**", median_figures(rounds))]:
            cells = [_cell(figures[column], ".2f" if "/pyspark" in column else ".1f") for column in ROUND_COLUMNS]
            lines.append(f"| {r['size']:,} | {label} | " + " | ".join(cells) + " |")
    for r in repeated:
        for number, this_round in enumerate(r["rebuilds"], 2):  # round 1's differences: peers_markdown
            peers = this_round.get("peers", {})
            for name in ("pyspark", "duckdb"):
                for difference in peers[name]["differences"] if name in peers else []:
                    lines.append(f"- {r['size']:,}, round {number}, {name} differs: {difference}")
    return lines


def _cell(value: float | None, number_format: str) -> str:
    return "-" if value is None else format(value, number_format)


def summary_markdown(results: list[dict], fixed: dict | None = None) -> str:
    """The report's markdown: the sizes' tables when sizes were measured, and the fixed cost when it was."""
    lines = [f"# make bench, {date.today().isoformat()}"]
    if results:
        lines += sizes_markdown(results)
    with_peers = [r for r in results if "peers" in r]
    if with_peers:
        lines += peers_markdown(with_peers)
    lines += rounds_markdown(results)
    if fixed:
        lines += fixed_cost_markdown(fixed, results)
    for r in results:
        lines += [
            "",
            f"Slowest dbt nodes at {r['size']:,} impressions/day "
            f"(all {r['dbt_nodes']} nodes: {r['dbt_node_seconds_total']:.1f} s of {r['dbt_build_s']:.1f} s):",
            "",
        ]
        lines += [f"- {n['node']}: {n['seconds']:.1f} s" for n in r["dbt_slowest_nodes"]]
    return "\n".join(lines) + "\n"


def sizes_markdown(results: list[dict]) -> list[str]:
    """Throughput of each stage and peak memory per stage, one row per size."""
    lines = [
        "",
        "Embedded warehouse, local[2], one process per size. Events = records written to the landing files "
        "(impressions, clicks, conversions, bid requests).",
        "",
        "| impressions/day | days | events | generate s | events/s | JVM start s | load s | events/s "
        "| dbt build s | events/s | dbt nodes | verified |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for r in results:
        events = r["records"]
        lines.append(
            f"| {r['size']:,} | {r['days']} | {events:,} | {r['generate_s']:.1f} | {events / r['generate_s']:,.0f} "
            f"| {r['jvm_start_s']:.1f} | {r['load_s']:.1f} | {events / r['load_s']:,.0f} "
            f"| {r['dbt_build_s']:.1f} | {events / r['dbt_build_s']:,.0f} | {r['dbt_nodes']} | {r['verified']} |"
        )
    lines += [
        "",
        "Peak resident memory per stage (this process and the Spark JVM, sampled every 0.2 s), MiB:",
        "",
        "| impressions/day | generate | load | dbt build | PySpark peer | DuckDB peer |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        peak = {stage: rss / 2**20 for stage, rss in r["peak_rss_bytes"].items()}
        peers = [r["peers"][name]["peak_rss_bytes"] / 2**20 if "peers" in r else None for name in ("pyspark", "duckdb")]
        lines.append(
            f"| {r['size']:,} | {peak['generate']:,.0f} | {peak['load']:,.0f} | {peak['dbt_build']:,.0f} | "
            + " | ".join("-" if mib is None else f"{mib:,.0f}" for mib in peers)
            + " |"
        )
    return lines


def measure_in_subprocess(size: int, days: int, seed: int, peers: bool = True, rounds: int = 1) -> dict:
    """measure_one in a process of its own (its own JVM and Derby metastore) on a fresh data folder; then, on the
    same raw tables, the hand-written PySpark job and DuckDB, each in its own process, compared with dbt's marts.
    Each further round rebuilds with `--full-refresh` and runs the peers again, in turn, on the same warehouse:
    one pair's ratio moves by a few tenths between runs on this machine (docs/performance.md)."""
    with tempfile.TemporaryDirectory(prefix=f"adx-bench-{size}-") as data_dir:
        common = ["--days", str(days), "--seed", str(seed), "--data-dir", data_dir]
        print(f"bench: {size:,} impressions/day x {days} day(s): dbt ...", file=sys.stderr, flush=True)
        result = run_json("bench.run", ["--one", str(size), *common])
        if peers:
            result["peers"] = measure_peers(size, common)
        result["rebuilds"] = []  # rounds 2..N; the result itself is round 1
        for number in range(2, rounds + 1):
            print(f"bench: {size:,} impressions/day: round {number}, dbt ...", file=sys.stderr, flush=True)
            rebuild = run_json("bench.run", ["--rebuild", *common])
            if peers:
                rebuild["peers"] = measure_peers(size, common)
            result["rebuilds"].append(rebuild)
        return result


def measure_peers(size: int, common: list[str]) -> dict:
    """Both peers on the raw tables in common's data folder, each in a process of its own, compared with the marts
    of dbt's latest build there."""
    print(f"bench: {size:,} impressions/day: PySpark peer ...", file=sys.stderr, flush=True)
    pyspark = run_json("bench.run", ["--peer", "pyspark", *common])
    print(f"bench: {size:,} impressions/day: DuckDB peer ...", file=sys.stderr, flush=True)
    duckdb = run_json("bench.run", ["--peer", "duckdb", *common])
    return peer_results(pyspark, duckdb)


def measure_peer(peer: str, data_dir: Path) -> dict:
    """One peer's build on the raw tables measure_one left in data_dir (run in a process of its own)."""
    peaks = PeakMemory()
    settings = build_settings(data_dir)
    with peaks.stage(peer):
        if peer == "pyspark":
            from bench import pyspark_peer

            result = pyspark_peer.measure(settings)
        else:
            from bench import duckdb_peer
            from ingestion.pseudonyms import pseudonym_session_conf

            result = duckdb_peer.run(
                settings.data_dir / "lake",
                PROJECT_DIR / "target" / "manifest.json",
                PROJECT_DIR,
                settings.data_dir / "duckdb",
                threads=_spark_cores(settings.spark_master),
                memory_limit=DUCKDB_MEMORY_LIMIT,
                session_conf=pseudonym_session_conf(settings),
            )
    result["peak_rss_bytes"] = peaks.bytes[peer]
    return result


def _spark_cores(master: str) -> int:
    """The cores of a local[N] master, so that DuckDB gets as many threads as Spark has cores."""
    cores = master.removeprefix("local[").removesuffix("]")
    return int(cores) if cores.isdigit() else os.cpu_count() or 1


def peer_results(pyspark: dict, duckdb: dict) -> dict:
    """Each peer's time and whether its marts equal dbt's (the PySpark process read both)."""
    expected = pyspark["dbt_aggregates"]
    return {
        "pyspark": {
            "session_s": pyspark["session_s"],
            "seconds": pyspark["job_s"],
            "peak_rss_bytes": pyspark["peak_rss_bytes"],
            "differences": differences(expected, pyspark["aggregates"]),
        },
        "duckdb": {
            "seconds": duckdb["seconds"],
            "version": duckdb["duckdb_version"],
            "peak_rss_bytes": duckdb["peak_rss_bytes"],
            "differences": differences(expected, duckdb["aggregates"]),
        },
        "groups_compared": sum(len(rows) for rows in expected.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,4000000,10000000", help="Impressions per day, comma-separated.")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--fixed-cost-size",
        type=int,
        default=1_000,
        help="A run at this many impressions/day measures the fixed cost of a build (0: skip).",
    )
    parser.add_argument(
        "--suite",
        choices=("embedded", "streaming", "analyst", "airflow", "encryption", "kafka-security", "all"),
        default="embedded",
        help="embedded: generate, load and dbt build per size (default); streaming: bench/streaming.py (producer -> "
        "Kafka -> raw Parquet) at the first of --sizes; analyst: bench/analyst.py (the 30-day campaign-performance "
        "query through the Thrift server, aggregate against facts) at --impressions; airflow: bench/airflow.py "
        "(adx_transform through Cosmos against one dbt build); encryption: bench/encryption.py (the raw zone encrypted "
        "against plaintext) at the first of --sizes; kafka-security: bench/kafka_security.py (the broker's TLS and "
        "logins against plaintext, 500k records, 3 rounds); all: the six.",
    )
    parser.add_argument(
        "--impressions",
        type=int,
        default=10_000_000,
        help="analyst suite: impressions over its 30 days (default: %(default)s).",
    )
    parser.add_argument(
        "--histories",
        default=",".join(str(days) for days in incremental.HISTORIES),
        help="Days of history before one new day's incremental run, comma-separated (empty: skip).",
    )
    parser.add_argument("--history-size", type=int, default=250_000, help="Impressions per day of the history runs.")
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also build the marts with the hand-written PySpark job and with DuckDB, and compare (default: yes).",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Rounds of the dbt build and its peers per size on the same warehouse (each further one a --full-refresh "
        "build), and of each history's incremental run; with more than one the report adds every round and the "
        "medians (default: %(default)s).",
    )
    parser.add_argument("--label", default="", help="Suffix of the results' file names (bench/results/<date>-<label>).")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    parser.add_argument("--peer", choices=("pyspark", "duckdb"), help=argparse.SUPPRESS)  # internal: one peer
    parser.add_argument("--rebuild", action="store_true", help=argparse.SUPPRESS)  # internal: a further round
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    if args.one:
        print(json.dumps(measure_one(args.one, args.days, args.seed, args.data_dir)))
        return
    if args.peer:
        print(json.dumps(measure_peer(args.peer, args.data_dir)))
        return
    if args.rebuild:
        print(json.dumps(measure_rebuild(args.data_dir)))
        return

    if args.suite == "streaming":
        from bench import streaming

        streaming.run(int(args.sizes.split(",")[0]), args.seed)
        return

    if args.suite == "analyst":
        from bench import analyst

        analyst.run(args.impressions, args.seed)
        return

    if args.suite == "airflow":
        from bench import airflow

        airflow.main([])
        return

    if args.suite == "kafka-security":
        from bench import kafka_security

        kafka_security.run(records=500_000, rounds=3)
        return

    if args.suite == "encryption":
        from bench import encryption

        encryption.run(int(args.sizes.split(",")[0]), args.days, rounds=1, seed=args.seed)
        return

    sizes = [int(size) for size in args.sizes.split(",") if size]
    results = [
        measure_in_subprocess(size, args.days, args.seed, peers=args.peers, rounds=args.rounds) for size in sizes
    ]
    fixed = (
        measure_in_subprocess(args.fixed_cost_size, args.days, args.seed, peers=False) if args.fixed_cost_size else None
    )

    histories = tuple(int(days) for days in args.histories.split(",") if days)
    incremental_results, incremental_markdown = (
        incremental.run(histories, args.history_size, args.seed, args.rounds) if histories else ([], "")
    )

    name = date.today().isoformat() + (f"-{args.label}" if args.label else "")
    markdown = summary_markdown(results, fixed)
    if any("peers" in r for r in results):
        plot = throughput_plot([r for r in results if "peers" in r], RESULTS_DIR / f"{name}-throughput.png")
        markdown += f"\n![events per second against size]({plot.name})\n"
    if incremental_results:
        plot = incremental_plot(incremental_results, RESULTS_DIR / f"{name}-incremental.png")
        markdown += incremental_markdown + f"\n![incremental run against history]({plot.name})\n"
    write_results(name, {"sizes": results, "fixed_cost": fixed, "incremental": incremental_results}, markdown)

    if args.suite == "all":
        from bench import airflow, analyst, encryption, kafka_security, streaming

        streaming.run(int(args.sizes.split(",")[0]), args.seed)
        analyst.run(args.impressions, args.seed)
        airflow.main([])
        encryption.run(int(args.sizes.split(",")[0]), args.days, rounds=1, seed=args.seed)
        kafka_security.run(records=500_000, rounds=3)


if __name__ == "__main__":
    main()
