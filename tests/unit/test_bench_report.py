"""The bench's markdown report shows the fixed cost it measured, also when no size was measured beside it (an
incremental-only run, `--sizes ""`)."""

from __future__ import annotations

from datetime import date

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
