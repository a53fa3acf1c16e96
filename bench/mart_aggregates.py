"""The aggregates by which a peer's marts are compared with dbt's: per mart, one query grouped by its date (and
campaign) with counts, distinct counts and sums of every measure, written once in Spark SQL and transpiled for
DuckDB. Two sets of marts are equal when every row matches: strings and dates exactly, numbers within 1e-6 (DuckDB
computes a decimal quotient as a double, so ratios may differ in the last of their 6 decimals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal

from ingestion.generator.truth import CAMPAIGN_DAILY_COLUMNS, RTB_DAILY_COLUMNS

NUMERIC_TOLERANCE = Decimal("0.000001")

# mart -> (group-by columns, aggregate expressions). Aggregated marts are compared column by column (one row per key).
MART_AGGREGATES: dict[str, tuple[list[str], list[str]]] = {
    "fct_impressions": (
        ["event_date", "campaign_id"],
        [
            "count(*)",
            "count(distinct impression_id)",
            "count(distinct user_id)",
            # the ids themselves: a peer that left them raw (not pseudonymised) differs here
            "min(user_id)",
            "max(user_id)",
            "sum(cost_usd)",
            "count_if(is_clicked)",
            "count_if(is_rtb)",
            "count(distinct bid_request_id)",
            "count(country_name)",
            "count(age_band)",
            "count(interests)",
            "sum(case when interests is not null then size(interests) end)",
            "count(distinct advertiser_name)",
            "count(distinct device_type)",
            "min(impression_at)",
            "max(impression_at)",
        ],
    ),
    "fct_clicks": (
        ["event_date", "campaign_id"],
        [
            "count(*)",
            "count(distinct click_id)",
            "min(user_id)",
            "max(user_id)",
            "count_if(has_impression)",
            "count(distinct impression_id)",
            "count(age_band)",
            "count(distinct advertiser_name)",
            "min(clicked_at)",
            "max(clicked_at)",
        ],
    ),
    "fct_conversions": (
        ["event_date", "campaign_id"],
        [
            "count(*)",
            "count(distinct conversion_id)",
            "min(user_id)",
            "max(user_id)",
            "sum(conversion_value_usd)",
            "count_if(attribution_type = 'click')",
            "count_if(attribution_type = 'view_through')",
            "count(distinct attributed_click_id)",
            "count(distinct attributed_impression_id)",
            "sum(seconds_to_convert)",
            "count(age_band)",
        ],
    ),
    # The aggregated marts: every measure the ground truth checks (ingestion/verify.py), the names joined from
    # dim_campaigns, and impressions_served, which the truth does not hold.
    "agg_campaign_daily": (
        list(CAMPAIGN_DAILY_COLUMNS[:2]),
        [f"max({column})" for column in ("campaign_name", "advertiser_name", *CAMPAIGN_DAILY_COLUMNS[2:])]
        + ["count(*)"],
    ),
    "agg_rtb_daily": (
        list(RTB_DAILY_COLUMNS[:3]),
        [f"max({column})" for column in (*RTB_DAILY_COLUMNS[3:], "impressions_served")] + ["count(*)"],
    ),
}


def aggregate_query(mart: str, schema: str, dialect: str = "spark") -> str:
    keys, aggregates = MART_AGGREGATES[mart]
    key_list = ", ".join(keys)
    query = f"select {key_list}, {', '.join(aggregates)} from {schema}.{mart} group by {key_list} order by {key_list}"
    if dialect == "spark":
        return query
    import sqlglot

    return sqlglot.transpile(query, read="spark", write=dialect)[0]


def normalise(row: Iterable) -> list:
    """JSON-friendly values: dates and timestamps as ISO text, numbers as text of an exact decimal."""
    values = []
    for value in row:
        if isinstance(value, datetime):
            # Spark returns naive local-UTC datetimes, DuckDB aware ones for timestamptz: compare the UTC wall time.
            values.append(value.replace(tzinfo=None).isoformat(sep=" "))
        elif isinstance(value, date):
            values.append(value.isoformat())
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            values.append(value)
        elif isinstance(value, int | float | Decimal):
            values.append(str(Decimal(str(value))))
        else:
            values.append(str(value))
    return values


def mart_aggregates(fetch: Callable[[str], list], schema: str, dialect: str = "spark") -> dict[str, list[list]]:
    """Every mart's aggregate rows, each fetched with `fetch(query)` in the engine that holds `schema`."""
    return {mart: [normalise(row) for row in fetch(aggregate_query(mart, schema, dialect))] for mart in MART_AGGREGATES}


def _values_equal(left, right) -> bool:
    if left == right:
        return True
    try:
        return abs(Decimal(left) - Decimal(right)) <= NUMERIC_TOLERANCE
    except (TypeError, ArithmeticError, ValueError):
        return False


def differences(expected: dict[str, list[list]], actual: dict[str, list[list]], limit: int = 5) -> list[str]:
    """Where `actual` differs from `expected` (dbt's marts): at most `limit` rows described per mart."""
    found = []
    for mart, expected_rows in expected.items():
        actual_rows = actual.get(mart)
        if actual_rows is None:
            found.append(f"{mart}: missing")
            continue
        if len(actual_rows) != len(expected_rows):
            found.append(f"{mart}: {len(actual_rows)} groups, expected {len(expected_rows)}")
        mismatched = [
            (want, got)
            for want, got in zip(expected_rows, actual_rows, strict=False)
            if len(want) != len(got) or not all(_values_equal(w, g) for w, g in zip(want, got, strict=True))
        ]
        found += [f"{mart}: {got} != expected {want}" for want, got in mismatched[:limit]]
    return found
