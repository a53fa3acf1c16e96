"""The pieces of the bench's peers that need no Spark: the comparison of mart aggregates, the dependency order of
the models DuckDB builds, and the Spark-to-DuckDB rewrites (checked by running them in DuckDB)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from bench.duckdb_peer import model_order, transpile
from bench.mart_aggregates import MART_AGGREGATES, aggregate_query, differences, normalise

ROW = ["2026-11-01", "cmp_001", "227", "1.049725100000", "0.009321"]


def test_equal_aggregates_have_no_differences_and_ratios_may_differ_in_the_last_decimal_only():
    expected = {"fct_impressions": [ROW]}
    assert differences(expected, {"fct_impressions": [ROW]}) == []
    within = [*ROW[:4], "0.0093209054593874"]  # DuckDB's double quotient of the same ratio
    assert differences(expected, {"fct_impressions": [within]}) == []


@pytest.mark.parametrize(
    "actual",
    [
        [[*ROW[:2], "228", *ROW[3:]]],  # one impression more
        [[*ROW[:3], "1.049727100000", ROW[4]]],  # spend off by 2e-6
        [[ROW[0], "cmp_002", *ROW[2:]]],  # another campaign
        [ROW, ROW],  # a group too many
        [],
    ],
)
def test_any_other_difference_is_reported(actual):
    assert differences({"fct_impressions": [ROW]}, {"fct_impressions": actual})


def test_a_missing_mart_is_reported():
    assert differences({"fct_clicks": []}, {}) == ["fct_clicks: missing"]


def test_normalise_gives_comparable_text_for_both_engines():
    assert normalise([datetime(2026, 11, 1, 0, 4, 15, 220000), 3, 1.5, None, True]) == [
        "2026-11-01 00:04:15.220000",
        "3",
        "1.5",
        None,
        True,
    ]


def test_every_aggregate_query_transpiles_for_duckdb():
    for mart in MART_AGGREGATES:
        assert "group by" in aggregate_query(mart, "marts").lower()
        assert aggregate_query(mart, "marts", dialect="duckdb").upper().startswith("SELECT")


def test_models_come_after_everything_they_depend_on():
    def node(name, kind="model", parents=()):
        return {"resource_type": kind, "package_name": "adx", "name": name, "depends_on": {"nodes": list(parents)}}

    manifest = {
        "metadata": {"project_name": "adx"},
        "nodes": {
            "model.adx.fct": node("fct", parents=["model.adx.int", "seed.adx.campaigns"]),
            "model.adx.int": node("int", parents=["model.adx.stg"]),
            "model.adx.stg": node("stg", parents=["source.adx.raw.impressions"]),
            "seed.adx.campaigns": node("campaigns", kind="seed"),
            "test.adx.unique_fct": node("unique_fct", kind="test", parents=["model.adx.fct"]),
            "model.elementary.other": {**node("other"), "package_name": "elementary"},
        },
    }
    names = [n["name"] for n in model_order(manifest)]
    assert sorted(names) == ["campaigns", "fct", "int", "stg"]
    assert names.index("stg") < names.index("int") < names.index("fct")
    assert names.index("campaigns") < names.index("fct")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, 0)),
        ("2026-11-01T12:30:00.250+02:00", datetime(2026, 11, 1, 10, 30, 0, 250000)),
        ("2026-11-01 10:00:00", datetime(2026, 11, 1, 10, 0)),  # no offset: UTC, the session time zone
        ("  2026-11-01T10:00:00Z ", datetime(2026, 11, 1, 10, 0)),
        ("2026-13-45T99:00:00Z", None),
        ("not-a-time", None),
        ("", None),
    ],
)
def test_try_to_timestamp_reads_iso_8601_in_duckdb_as_in_spark(text, expected):
    """The generator's timestamps (clean, with offsets, and its BAD_TIMESTAMPS) through the staging expression."""
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    query = transpile("select try_to_timestamp(nullif(trim(t), '')) from (select cast(? as string) as t)")
    assert connection.execute(query, [text]).fetchone()[0] == expected


def test_make_dt_interval_subtracts_hours_in_duckdb():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    query = transpile("select timestamp'2026-11-02 06:00:00' - make_dt_interval(0, 24)")
    # sqlglot reads Spark's timestamp as DuckDB's timestamptz: the same instant, UTC in this session.
    assert connection.execute(query).fetchone()[0].replace(tzinfo=None) == datetime(2026, 11, 1, 6, 0)


def test_session_settings_are_substituted_and_raise_error_raises_in_duckdb():
    """The pseudonymisation pads reach DuckDB as Spark substitutes them (${key}); raise_error becomes error."""
    guarded = "select case when octet_length(unhex('${adx.k}')) = 2 then 'ok' else raise_error('no key') end"
    connection = duckdb.connect()
    assert connection.execute(transpile(guarded, {"adx.k": "abcd"})).fetchone()[0] == "ok"
    with pytest.raises(duckdb.Error, match="no key"):
        connection.execute(transpile(guarded, {"adx.k": "ab"})).fetchone()
