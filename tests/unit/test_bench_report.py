"""The bench's markdown report shows the fixed cost it measured, also when no size was measured beside it (an
incremental-only run, `--sizes ""`), each round of a repeated measurement, and the medians it takes."""

from __future__ import annotations

import statistics
from datetime import date

from bench.incremental import summary_markdown as incremental_summary
from bench.incremental import with_rounds
from bench.run import rounds_markdown, summary_markdown

FIXED = {
    "size": 1000,
    "jvm_start_s": 9.3,
    "dbt_parse_s": 5.2,
    "dbt_build_s": 64.7,
    "dbt_nodes": 132,
}


def test_the_fixed_cost_is_reported_without_any_size():
    markdown = summary_markdown([], FIXED)

    assert "Fixed cost, measured as the same run at 1,000 impressions/day" in markdown
    assert "dbt build 64.7 s (132 nodes, 0.49 s a node)" in markdown
    assert "| impressions/day |" not in markdown


def test_nothing_measured_gives_only_the_title():
    assert summary_markdown([], None).splitlines() == [f"# make bench, {date.today().isoformat()}"]


def _round(build_s: float, models_s: float, pyspark_s: float, duckdb_s: float, pyspark_differs: bool = False) -> dict:
    return {
        "dbt_build_s": build_s,
        "dbt_model_seconds": models_s,
        "dbt_test_seconds": build_s - models_s,
        "peers": {
            "pyspark": {
                "seconds": pyspark_s,
                "differences": ["agg_campaign_daily: 1 group"] if pyspark_differs else [],
            },
            "duckdb": {"seconds": duckdb_s, "differences": []},
            "groups_compared": 192,
        },
    }


def test_rounds_report_each_round_and_the_medians_of_the_rounds_whose_marts_are_equal():
    rebuilds = [_round(480.0, 380.0, 100.0, 96.0, pyspark_differs=True), _round(460.0, 360.0, 400.0, 92.0)]
    lines = rounds_markdown([{"size": 10_000_000, **_round(500.0, 400.0, 250.0, 100.0), "rebuilds": rebuilds}])
    rows = [line for line in lines if line.startswith("| 10,000,000 |")]

    assert rows[0] == "| 10,000,000 | 1 | 500.0 | 400.0 | 100.0 | 250.0 | 100.0 | 2.00 | 1.60 | 5.0 |"
    # round 2's PySpark job built different marts: its time and ratios are left out, its DuckDB time is not
    assert rows[1] == "| 10,000,000 | 2 | 480.0 | 380.0 | 100.0 | - | 96.0 | - | - | 5.0 |"
    # medians per column; dbt/PySpark is the median of rounds 1 and 3 (2.00 and 1.15), not 480 over 325
    assert rows[3] == "| 10,000,000 | **median** | 480.0 | 380.0 | 100.0 | 325.0 | 96.0 | 1.57 | 1.25 | 5.0 |"
    assert "- 10,000,000, round 2, pyspark differs: agg_campaign_daily: 1 group" in lines


def test_a_size_measured_once_has_no_rounds_table():
    assert rounds_markdown([{"size": 1_000_000, **_round(100.0, 60.0, 70.0, 8.0), "rebuilds": []}]) == []


def _history(days: int, rounds_s: list[float], full_rebuild_s: float | None = None) -> dict:
    result = {
        "history_days": days,
        "size": 250_000,
        "incremental_rounds_s": rounds_s,
        "incremental_s": statistics.median(rounds_s),
        "incremental_files_read": 1000 * days,
        "incremental_bytes_read": 2**20 * days,
        "incremental_nodes": {"model.adx.fct_impressions": 10.0},
        "verified": True,
    }
    return result | ({"full_rebuild_s": full_rebuild_s} if full_rebuild_s else {})


def test_repeated_incremental_runs_are_listed_and_their_median_makes_the_ratios():
    markdown = incremental_summary([_history(1, [60.0, 50.0, 52.0]), _history(30, [90.0, 62.0, 65.0], 400.0)])
    rows = [line for line in markdown.splitlines() if line.startswith(("| 1 |", "| 30 |"))]

    # medians 52 and 65: 65 / 52 = 1.25, where the first runs alone would give 90 / 60 = 1.50
    assert rows[0] == "| 1 | 52.0 | 60.0, 50.0, 52.0 | 1.00 | 1,000 | 1.0 | - | - | True |"
    assert rows[1] == "| 30 | 65.0 | 90.0, 62.0, 65.0 | 1.25 | 30,000 | 30.0 | 400.0 | 16% | True |"
    assert "Slowest nodes of the first round's incremental run at 30 days" in markdown


def test_rounds_of_a_history_give_its_median_and_keep_the_first_rounds_reads():
    first = _history(30, [80.0], 400.0)
    later = [_history(30, [60.0]) | {"incremental_files_read": 1}, _history(30, [70.0]) | {"verified": False}]

    combined = with_rounds(first, later)

    assert combined["incremental_rounds_s"] == [80.0, 60.0, 70.0]
    assert combined["incremental_s"] == 70.0
    assert combined["incremental_files_read"] == 30_000
    assert combined["full_rebuild_s"] == 400.0
    assert combined["verified"] is False  # one round's warehouse failed verification


def test_a_single_incremental_run_has_no_rounds_column():
    markdown = incremental_summary([_history(1, [60.0]), _history(30, [66.0], 400.0)])

    assert "| days of history | incremental s | vs 1 day |" in markdown
    assert "| 30 | 66.0 | 1.10 | 30,000 | 30.0 | 400.0 | 16% | True |" in markdown
