"""Overhead of running the dbt project through Airflow and Cosmos: one adx_transform interval run against a single
`dbt build` of the same selection and interval, on the embedded warehouse.

`python -m bench.airflow [--scale N] [--days D]` (or `python -m bench.run --suite airflow`):

1. A warehouse of its own (default data/bench-airflow): `adx generate --days D --scale N`, `adx load`, and one
   full `adx transform` so that the measured runs are incremental runs of the last day, as in production.
2. Timed, each as its own process, from start to exit (JVM start, dbt parse and Airflow's own work included):
   - `dbt build`: `adx transform --date <last day>` (one dbt build of the whole project for that interval);
   - adx_transform through `dag.test()` (ingestion.orchestration.dag_run) with the same interval as params, once
     per Cosmos execution mode: watcher (one dbt build in a producer task, a sensor per node), local with tests
     after each model (one dbt invocation per model and per test), local with `dbt build` per model.
   The order alternates over --repeat rounds; the median of each is reported, and its ratio to `dbt build`.
   Every run must succeed.

Under dag.test() all tasks run in one process, so local mode's per-task dbt invocations reuse one Spark session;
under a scheduler every task is a new process and also pays a JVM start (about 10 s here), which the report adds
as an estimate for the local modes (tasks x the JVM start measured in the same run).

Writes bench/results/airflow-<date>.json and .md and prints the summary. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from bench.report import write_results
from ingestion.orchestration.airflow_env import airflow_process_environment
from ingestion.orchestration.dag_run import parse_outcome
from ingestion.settings import PROJECT_DIR, Settings

ADX = str(Path(sys.executable).parent / "adx")
DEFAULT_DATA_DIR = PROJECT_DIR / "data" / "bench-airflow"
START_DATE = date(2026, 11, 1)
GOAL_RATIO = 1.5
MODES = {
    "watcher": {"ADX_AIRFLOW_DBT_EXECUTION_MODE": "watcher", "ADX_AIRFLOW_DBT_TEST_BEHAVIOR": "after_each"},
    "local (tests after each model)": {
        "ADX_AIRFLOW_DBT_EXECUTION_MODE": "local",
        "ADX_AIRFLOW_DBT_TEST_BEHAVIOR": "after_each",
    },
    "local (dbt build per model)": {
        "ADX_AIRFLOW_DBT_EXECUTION_MODE": "local",
        "ADX_AIRFLOW_DBT_TEST_BEHAVIOR": "build",
    },
}


def log(message: str) -> None:
    print(f"bench airflow: {message}", file=sys.stderr, flush=True)


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    return airflow_process_environment(Settings(data_dir=data_dir), **extra)


def timed(command: list[str], env: dict[str, str], log_file: Path) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    with log_file.open("a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n{result.stdout}\n{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {result.returncode}); see {log_file}")
    return seconds, result.stdout


def prepare(data_dir: Path, scale: int, days: int, log_file: Path) -> date:
    env = environment(data_dir)
    for command in (
        [ADX, "generate", "--days", str(days), "--scale", str(scale), "--start-date", START_DATE.isoformat()],
        [ADX, "load"],
        [ADX, "transform"],
        [ADX, "airflow-manifest"],
        [ADX, "airflow", "db", "migrate"],
    ):
        seconds, _ = timed(command, env, log_file)
        log(f"{' '.join(command[1:3])}: {seconds:.1f} s")
    return START_DATE + timedelta(days=days - 1)


def jvm_start_seconds(data_dir: Path, log_file: Path) -> float:
    """Wall time of a process that only starts Spark on the warehouse and runs one query."""
    seconds, _ = timed([ADX, "sql", "select 1"], environment(data_dir), log_file)
    return seconds


def run(
    scale: int, days: int, repeat: int, data_dir: Path = DEFAULT_DATA_DIR, modes: tuple[str, ...] = tuple(MODES)
) -> dict:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = data_dir / "bench-airflow.log"
    last_day = prepare(data_dir, scale, days, log_file)
    conf = json.dumps({"start_date": last_day.isoformat(), "end_date": last_day.isoformat()})
    runs: dict[str, list[float]] = {"dbt build": [], **{mode: [] for mode in modes}}
    tasks: dict[str, int] = {}
    order = ["dbt build", *modes]
    for round_number in range(repeat):
        for name in order if round_number % 2 == 0 else list(reversed(order)):
            if name == "dbt build":
                seconds, _ = timed([ADX, "transform", "--date", last_day.isoformat()], environment(data_dir), log_file)
            else:
                command = [sys.executable, "-m", "ingestion.orchestration.dag_run", "adx_transform", "--conf", conf]
                seconds, stdout = timed(command, environment(data_dir, **MODES[name]), log_file)
                outcome = parse_outcome(stdout)
                tasks[name] = len(outcome["tasks"])
            runs[name].append(seconds)
            log(f"round {round_number + 1}: {name}: {seconds:.1f} s")
    jvm_seconds = jvm_start_seconds(data_dir, log_file)
    baseline = statistics.median(runs["dbt build"])
    results = {
        "date": date.today().isoformat(),
        "scale": scale,
        "days": days,
        "interval": last_day.isoformat(),
        "repeat": repeat,
        "cpus": os.cpu_count(),
        "jvm_start_and_one_query_s": round(jvm_seconds, 1),
        "load_average_1m": os.getloadavg()[0],
        "runs_s": {name: [round(s, 1) for s in values] for name, values in runs.items()},
        "median_s": {name: round(statistics.median(values), 1) for name, values in runs.items()},
        "ratio_to_dbt_build": {name: round(statistics.median(values) / baseline, 2) for name, values in runs.items()},
        "tasks": tasks,
        "goal_ratio": GOAL_RATIO,
    }
    write_results(f"airflow-{results['date']}", results, markdown(results))
    return results


def markdown(results: dict) -> str:
    lines = [
        f"# adx_transform through Airflow + Cosmos vs one `dbt build` ({results['date']})",
        "",
        f"{results['scale']:,} impressions/day x {results['days']} days; incremental run of {results['interval']}; "
        f"{results['repeat']} rounds (alternating order), {results['cpus']} CPUs; goal: at most "
        f"{results['goal_ratio']}x a single `dbt build`.",
        "",
        "| run | tasks | median (s) | runs (s) | x dbt build |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for name, median in results["median_s"].items():
        runs = ", ".join(f"{s:.1f}" for s in results["runs_s"][name])
        tasks = results["tasks"].get(name, "")
        lines.append(f"| {name} | {tasks} | {median:.1f} | {runs} | {results['ratio_to_dbt_build'][name]:.2f} |")
    lines += [
        "",
        f"dag.test() runs every task in one process. Under a scheduler each task is its own process: the local modes "
        f"would also pay about {results['jvm_start_and_one_query_s']:.0f} s of JVM start and Spark session per dbt "
        "task (measured: a process that starts Spark and runs one query), the watcher mode once.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=50_000, help="Impressions per day (default: %(default)s).")
    parser.add_argument("--days", type=int, default=2, help="Arrival days; the last one is rebuilt (default: 2).")
    parser.add_argument("--repeat", type=int, default=2, help="Rounds of the timed runs (default: %(default)s).")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--modes", nargs="+", choices=list(MODES), default=list(MODES), help="Execution modes to time (default: all)."
    )
    args = parser.parse_args(argv)
    run(args.scale, args.days, args.repeat, args.data_dir, tuple(args.modes))


if __name__ == "__main__":
    main()
