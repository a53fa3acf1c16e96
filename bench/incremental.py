"""Incremental cost against history (`make bench`, suite incremental): for each history length (1, 7 and 30 days by
default), a fresh warehouse holds that many days, built; then one new day arrives and is loaded, and its
incremental `dbt build --vars run_date: <new day>` is timed, with the files and bytes it read. At the longest history
a full rebuild of the same warehouse (`--full-refresh`) is timed too: the incremental run should cost at most a
tenth of it, and no more at 30 days of history than at 1 (within 1.2x).

Each history runs in a process of its own (the embedded Derby metastore admits one JVM) on a fresh data folder. With
rounds > 1 every history is measured again in each round, on a warehouse of its own (a rerun of the day on the same
warehouse finds the day's partitions made and is faster than the run that landed it), and the median round is the
history's figure. The histories take turns within a round, so that the machine's drift during the bench reaches
each of them alike.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.measure import dbt_node_seconds, run_json
from ingestion.settings import Settings

HISTORIES = (1, 7, 30)
START_DATE = date(2026, 11, 1)


def measure_history(history_days: int, size: int, seed: int, data_dir: Path, full_rebuild: bool) -> dict:
    """Build history_days days, then time one new day's incremental build (in this process)."""
    from bench.read_metrics import READ_METRICS_CONF, snapshot
    from ingestion.generator import generate
    from ingestion.loader import load
    from ingestion.spark import get_spark
    from ingestion.transform import build
    from ingestion.verify import verify

    settings = Settings(data_dir=data_dir)
    new_day = START_DATE + timedelta(days=history_days)
    summary = generate(settings.data_dir, days=history_days + 1, scale=size, seed=seed, start_date=START_DATE)
    history_arrivals = [day for day in summary.arrival_dates if day < new_day]

    spark = get_spark(settings, extra_conf=READ_METRICS_CONF)
    result: dict = {"history_days": history_days, "size": size, "new_day": new_day.isoformat()}

    load(spark, settings, dates=history_arrivals)
    started = time.perf_counter()
    build(settings, run_date=history_arrivals[-1])
    result["history_build_s"] = time.perf_counter() - started

    load(spark, settings, dates=[new_day])
    before = snapshot(spark)
    started = time.perf_counter()
    build(settings, run_date=new_day, arrival_start=new_day)  # what adx_transform passes after one day's ingest
    result["incremental_s"] = time.perf_counter() - started
    reads = snapshot(spark) - before
    result |= {"incremental_files_read": reads.files, "incremental_bytes_read": reads.bytes}
    result["incremental_nodes"] = {n["node"]: round(n["seconds"], 2) for n in dbt_node_seconds()}
    result["verified"] = verify(spark, settings, as_of=new_day) == []

    if full_rebuild:
        before = snapshot(spark)
        started = time.perf_counter()
        build(settings, run_date=new_day, full_refresh=True)
        result["full_rebuild_s"] = time.perf_counter() - started
        reads = snapshot(spark) - before
        result |= {"full_rebuild_files_read": reads.files, "full_rebuild_bytes_read": reads.bytes}
    spark.stop()
    return result


def measure_in_subprocess(history_days: int, size: int, seed: int, full_rebuild: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"adx-bench-incremental-{history_days}-") as data_dir:
        print(f"bench: {history_days} day(s) of history at {size:,} impressions/day ...", file=sys.stderr, flush=True)
        mode = "full" if full_rebuild else "incremental"
        return run_json("bench.incremental", [str(history_days), str(size), str(seed), data_dir, mode])


def summary_markdown(results: list[dict]) -> str:
    first = results[0]
    repeated = any(len(r.get("incremental_rounds_s", [])) > 1 for r in results)
    lines = [
        "",
        f"## Incremental cost against history ({first['size']:,} impressions/day)",
        "",
        "One new day's `dbt build --vars run_date: <day>` (tests included) on a warehouse holding the given history; "
        "files and bytes read from the session's status API (file scans' files, stages' input bytes).",
    ]
    if repeated:
        lines += [
            "",
            "Each history was measured on warehouses of its own, one a round: incremental s is the median round, and "
            "the ratios are taken of it; files, bytes and the full rebuild are the first round's.",
        ]
    lines += [
        "",
        "| days of history | incremental s |"
        + (" every round s |" if repeated else "")
        + " vs 1 day | files read | MiB read | full rebuild s | incremental / full | verified |",
        "|---:|---:|" + ("---|" if repeated else "") + "---:|---:|---:|---:|---:|:---|",
    ]
    for r in results:
        full = r.get("full_rebuild_s")
        full_cells = f"{full:.1f} | {r['incremental_s'] / full:.0%}" if full else "- | -"
        rounds_cell = " " + ", ".join(f"{s:.1f}" for s in r["incremental_rounds_s"]) + " |" if repeated else ""
        lines.append(
            f"| {r['history_days']} | {r['incremental_s']:.1f} |{rounds_cell} "
            f"{r['incremental_s'] / first['incremental_s']:.2f} "
            f"| {r['incremental_files_read']:,} | {r['incremental_bytes_read'] / 2**20:,.1f} | {full_cells} "
            f"| {r['verified']} |"
        )
    last = results[-1]
    which = "the first round's incremental run" if repeated else "the incremental run"
    lines += ["", f"Slowest nodes of {which} at {last['history_days']} days of history:", ""]
    lines += [f"- {node}: {seconds:.1f} s" for node, seconds in list(last["incremental_nodes"].items())[:10]]
    return "\n".join(lines) + "\n"


def run(histories: tuple[int, ...], size: int, seed: int, rounds: int = 1) -> tuple[list[dict], str]:
    rounds_measured = [
        [measure_in_subprocess(days, size, seed, full_rebuild=n == 0 and days == max(histories)) for days in histories]
        for n in range(rounds)
    ]
    results = [with_rounds(first, later) for first, *later in zip(*rounds_measured, strict=True)]
    return results, summary_markdown(results)


def with_rounds(first: dict, later: list[dict]) -> dict:
    """The first round's measurement with every round's incremental seconds, and their median as incremental_s;
    files, bytes, node times and the full rebuild stay the first round's."""
    seconds = [first["incremental_s"]] + [r["incremental_s"] for r in later]
    return first | {
        "incremental_rounds_s": seconds,
        "incremental_s": statistics.median(seconds),
        "verified": all(r["verified"] for r in [first, *later]),
    }


if __name__ == "__main__":
    days, scale, random_seed, folder, mode = sys.argv[1:6]
    print(json.dumps(measure_history(int(days), int(scale), int(random_seed), Path(folder), mode == "full")))
