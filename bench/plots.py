"""PNG plots of `make bench` results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def throughput_plot(results: list[dict], path: Path) -> Path:
    """Events per second against impressions per day: dbt build, the PySpark job and DuckDB (peers whose marts
    differ from dbt's are left out)."""
    pyplot = _pyplot()
    sizes = [r["size"] for r in results]
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    axes.plot(sizes, [r["records"] / r["dbt_build_s"] for r in results], marker="o", label="dbt build (Spark)")
    for name, label in (("pyspark", "hand-written PySpark"), ("duckdb", "DuckDB, same SQL")):
        points = [
            (r["size"], r["records"] / r["peers"][name]["seconds"])
            for r in results
            if "peers" in r and not r["peers"][name]["differences"]
        ]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(sizes, [f"{size / 1e6:g}M" for size in sizes])
    axes.set_xlabel("impressions per day")
    axes.set_ylabel("events per second (build, JVM start excluded)")
    axes.set_title("Full build throughput, 2 cores")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def incremental_plot(results: list[dict], path: Path) -> Path:
    """One new day's incremental build against days of history: seconds, and MiB read on a second axis."""
    pyplot = _pyplot()
    history = [r["history_days"] for r in results]
    figure, seconds_axis = pyplot.subplots(figsize=(7, 4.5))
    seconds_axis.plot(history, [r["incremental_s"] for r in results], marker="o", color="tab:blue", label="seconds")
    seconds_axis.set_xlabel("days of history in the warehouse")
    seconds_axis.set_ylabel("incremental dbt build, s", color="tab:blue")
    seconds_axis.set_ylim(bottom=0)
    bytes_axis = seconds_axis.twinx()
    bytes_axis.plot(
        history,
        [r["incremental_bytes_read"] / 2**20 for r in results],
        marker="s",
        linestyle="--",
        color="tab:orange",
        label="MiB read",
    )
    bytes_axis.set_ylabel("MiB read", color="tab:orange")
    bytes_axis.set_ylim(bottom=0)
    seconds_axis.set_xticks(history)
    seconds_axis.set_title(f"One new day's incremental run ({results[0]['size']:,} impressions/day)")
    seconds_axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
