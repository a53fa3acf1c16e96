"""The bench's markdown report shows the fixed cost it measured, also when no size was measured beside it (an
incremental-only run, `--sizes ""`)."""

from __future__ import annotations

from datetime import date

from bench.run import summary_markdown

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
