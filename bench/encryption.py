"""Cost of the raw zone's Parquet encryption (ingestion/raw_encryption.py): the same input loaded and built twice,
once with the raw tables encrypted and once plaintext (ADX_RAW_ENCRYPTION=false).

`python -m bench.encryption [--scale N] [--days D] [--rounds R]` (or `python -m bench.run --suite encryption`):
each round builds one warehouse per mode, in alternating order, each in a process of its own (own JVM and Derby
metastore) and a fresh data folder, from the same generated files. Per mode it times:
- `load`: the Spark loader writing raw and quarantine (encryption happens here);
- `raw scan`: one pass over every column of every raw table (xxhash64 of each row), which decrypts every page;
- `dbt build`: seeds, models and tests, whose staging models read raw.
It reports each mode's median over the rounds, the ratio encrypted / plaintext, and the raw zone's bytes on disk.
Writes bench/results/<date>-encryption.json and .md. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.measure import run_json
from bench.report import write_results
from ingestion.settings import Settings

MODES = {"plaintext": False, "encrypted": True}
STAGES = ("load_s", "raw_scan_s", "dbt_build_s")


def measure_mode(encrypted: bool, landing_source: Path, data_dir: Path) -> dict:
    """Load and build the generated files of landing_source in data_dir (this process's JVM), timed per stage."""
    from ingestion.loader import load
    from ingestion.sources import SOURCES
    from ingestion.spark import get_spark
    from ingestion.transform import build

    shutil.copytree(landing_source, data_dir, dirs_exist_ok=True)
    settings = Settings(data_dir=data_dir, raw_encryption=encrypted)
    spark = get_spark(settings)
    spark.sql("select 1").collect()

    timings: dict = {}
    started = time.perf_counter()
    load(spark, settings)
    timings["load_s"] = time.perf_counter() - started

    started = time.perf_counter()
    rows = 0
    for source in SOURCES.values():
        for table in (source.raw_table, source.quarantine_table):
            rows += spark.sql(f"select count(*), sum(xxhash64(*)) from {table}").first()[0]
    timings["raw_scan_s"] = time.perf_counter() - started
    timings["raw_rows"] = rows

    started = time.perf_counter()
    build(settings)
    timings["dbt_build_s"] = time.perf_counter() - started

    raw_files = list((data_dir / "lake" / "raw.db").rglob("*.parquet"))
    timings["raw_bytes"] = sum(path.stat().st_size for path in raw_files)
    timings["raw_files"] = len(raw_files)
    return timings


def run(scale: int, days: int, rounds: int, seed: int) -> dict:
    from ingestion.generator import generate

    with tempfile.TemporaryDirectory(prefix="adx-bench-encryption-") as work:
        landing = Path(work) / "generated"
        generate(landing, days=days, scale=scale, seed=seed)
        measured: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for round_number in range(rounds):
            order = list(MODES) if round_number % 2 == 0 else list(reversed(MODES))
            for mode in order:
                data_dir = Path(work) / f"{mode}-{round_number}"
                arguments = ["--one", mode, "--landing", str(landing), "--data-dir", str(data_dir)]
                measured[mode].append(run_json("bench.encryption", arguments))
                shutil.rmtree(data_dir)

    medians = {
        mode: {stage: statistics.median(r[stage] for r in runs) for stage in STAGES} for mode, runs in measured.items()
    }
    for mode, runs in measured.items():
        medians[mode]["raw_bytes"] = runs[0]["raw_bytes"]
        medians[mode]["raw_rows"] = runs[0]["raw_rows"]
    results = {"scale": scale, "days": days, "rounds": rounds, "runs": measured, "medians": medians}
    name = f"{date.today().isoformat()}-encryption"
    write_results(name, results, summary_markdown(results))
    return results


def summary_markdown(results: dict) -> str:
    plain, encrypted = results["medians"]["plaintext"], results["medians"]["encrypted"]
    if plain["raw_rows"] != encrypted["raw_rows"]:
        raise RuntimeError(f"the two modes landed different rows: {plain['raw_rows']} and {encrypted['raw_rows']}")
    lines = [
        f"# Raw zone encryption, {date.today().isoformat()}",
        "",
        f"{results['scale']:,} impressions a day, {results['days']} day(s), {plain['raw_rows']:,} raw and quarantined "
        f"rows; median of {results['rounds']} round(s), modes alternating, each in a JVM of its own.",
        "",
        "| stage | plaintext s | encrypted s | encrypted / plaintext |",
        "| --- | ---: | ---: | ---: |",
    ]
    for stage in STAGES:
        lines.append(
            f"| {stage.removesuffix('_s').replace('_', ' ')} | {plain[stage]:.1f} | {encrypted[stage]:.1f} | "
            f"{encrypted[stage] / plain[stage]:.2f} |"
        )
    lines.append(
        f"| raw bytes on disk | {plain['raw_bytes']:,} | {encrypted['raw_bytes']:,} | "
        f"{encrypted['raw_bytes'] / plain['raw_bytes']:.3f} |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=1_000_000, help="Impressions a day.")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--one", choices=tuple(MODES), help=argparse.SUPPRESS)  # internal: one mode, print JSON
    parser.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_mode(MODES[args.one], args.landing, args.data_dir)))
        return
    run(args.scale, args.days, args.rounds, args.seed)


if __name__ == "__main__":
    main()
