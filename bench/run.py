"""`make bench`: wall time and throughput of generate, load and `dbt build` on the embedded warehouse, and the fixed
cost of a build (JVM start, dbt parse, per-node overhead: a run at a tiny size).

Each size runs in its own process (the embedded Derby metastore admits one JVM) on a fresh data folder.
Writes bench/results/<date>.json and <date>.md and prints the summary. Never part of `make test`.
Other suites: streaming (bench/streaming.py), analyst (bench/analyst.py) and airflow (bench/airflow.py);
`--suite all` runs the four.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.memory import PeakMemory
from bench.report import write_results
from ingestion.settings import PROJECT_DIR, Settings


def measure_one(size: int, days: int, seed: int, data_dir: Path) -> dict:
    """Generate, load and build one dataset in this process; return the timings and each stage's peak memory."""
    from ingestion.generator import generate
    from ingestion.loader import load
    from ingestion.spark import get_spark
    from ingestion.transform import build, discard_saved_parse, run_dbt
    from ingestion.verify import verify

    settings = Settings(data_dir=data_dir)
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
    run_results = json.loads((PROJECT_DIR / "target" / "run_results.json").read_text())
    nodes = sorted(
        ({"node": r["unique_id"], "seconds": r["execution_time"]} for r in run_results["results"]),
        key=lambda n: -n["seconds"],
    )
    timings["dbt_nodes"] = len(nodes)
    timings["dbt_node_seconds_total"] = sum(n["seconds"] for n in nodes)
    timings["dbt_slowest_nodes"] = nodes[:10]
    timings["verified"] = verify(spark, settings, as_of=summary.arrival_dates[-1]) == []
    spark.stop()
    timings["peak_rss_bytes"] = peaks.bytes  # this process and the Spark JVM, per stage
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


def summary_markdown(results: list[dict], fixed: dict | None = None) -> str:
    lines = [
        f"# make bench, {date.today().isoformat()}",
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
        "| impressions/day | generate | load | dbt build |",
        "|---:|---:|---:|---:|",
    ]
    for r in results:
        peak = {stage: rss / 2**20 for stage, rss in r["peak_rss_bytes"].items()}
        lines.append(f"| {r['size']:,} | {peak['generate']:,.0f} | {peak['load']:,.0f} | {peak['dbt_build']:,.0f} |")
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


def measure_in_subprocess(size: int, days: int, seed: int) -> dict:
    """measure_one in a process of its own (its own JVM and Derby metastore) on a fresh data folder."""
    with tempfile.TemporaryDirectory(prefix=f"adx-bench-{size}-") as data_dir:
        command = [
            sys.executable,
            "-m",
            "bench.run",
            "--one",
            str(size),
            "--days",
            str(days),
            "--seed",
            str(seed),
            "--data-dir",
            data_dir,
        ]
        print(f"bench: {size:,} impressions/day x {days} day(s) ...", file=sys.stderr, flush=True)
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR).stdout
        return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,4000000", help="Impressions per day, comma-separated.")
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
        choices=("embedded", "streaming", "analyst", "airflow", "all"),
        default="embedded",
        help="embedded: generate, load and dbt build per size (default); streaming: bench/streaming.py (producer -> "
        "Kafka -> raw Parquet) at the first of --sizes; analyst: bench/analyst.py (the 30-day campaign-performance "
        "query through the Thrift server, aggregate against facts) at --impressions; airflow: bench/airflow.py "
        "(adx_transform through Cosmos against one dbt build); all: the four.",
    )
    parser.add_argument(
        "--impressions",
        type=int,
        default=10_000_000,
        help="analyst suite: impressions over its 30 days (default: %(default)s).",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure_one(args.one, args.days, args.seed, args.data_dir)))
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

    results = [measure_in_subprocess(size, args.days, args.seed) for size in (int(s) for s in args.sizes.split(","))]
    fixed = measure_in_subprocess(args.fixed_cost_size, args.days, args.seed) if args.fixed_cost_size else None

    write_results(date.today().isoformat(), {"sizes": results, "fixed_cost": fixed}, summary_markdown(results, fixed))

    if args.suite == "all":
        from bench import airflow, analyst, streaming

        streaming.run(int(args.sizes.split(",")[0]), args.seed)
        analyst.run(args.impressions, args.seed)
        airflow.main([])


if __name__ == "__main__":
    main()
