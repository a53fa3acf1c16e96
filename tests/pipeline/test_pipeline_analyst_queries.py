"""The analyst queries of docs/analyst_queries on the built warehouse: each one runs and reconciles with a direct
computation from the fact tables, and the table layout does what docs/analysts.md promises, proven on the
query plans: a filter on the partition columns reads fewer partitions, and a join of two facts bucketed by
user_id does not shuffle (while the same join without bucketing does)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from query_plans import (
    assert_no_shuffle_join,
    assert_prunes_partitions,
    read_statements,
    scans,
    shuffles_under_sort_merge_joins,
)

from ingestion.settings import PROJECT_DIR

pytestmark = pytest.mark.integration

QUERIES = PROJECT_DIR / "docs" / "analyst_queries"
DAY_1, DAY_2 = date(2026, 11, 1), date(2026, 11, 2)  # the two days of the built warehouse
CAMPAIGN = "cmp_006"  # the campaign with the most impressions, clicks and conversions at seed 7
PARAMETERS = ("param_start_date", "param_end_date", "param_campaign_id")


def _literal(value: date | str | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, date):
        return f"date'{value.isoformat()}'"
    return "'" + value.replace("'", "''") + "'"


def _query(spark, name: str, **parameters: date | str | None) -> str:
    """Declare the session variables of an analyst query file, override some of them as an analyst would
    (`set var`), and return its query."""
    *declarations, query = read_statements(QUERIES / name)
    for statement in declarations:
        spark.sql(statement)
    for parameter, value in parameters.items():
        assert parameter in PARAMETERS, parameter
        spark.sql(f"set var {parameter} = {_literal(value)}")
    return query


def _run(spark, name: str, **parameters: date | str | None) -> list:
    return spark.sql(_query(spark, name, **parameters)).collect()


@pytest.fixture(autouse=True)
def _drop_query_variables(spark) -> Iterator[None]:
    yield
    for parameter in PARAMETERS:
        spark.sql(f"drop temporary variable if exists {parameter}")


@contextmanager
def _conf(spark, settings: dict[str, str]) -> Iterator[None]:
    """Set Spark SQL settings for a block, then restore the previous values (or unset them)."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    try:
        for key, value in settings.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _in_range(start: date, end: date, campaign: str | None) -> str:
    condition = f"event_date between date'{start}' and date'{end}'"
    return condition + (f" and campaign_id = '{campaign}'" if campaign else "")


def _counts(spark, table: str, where: str, keys: list[str], measures: str = "count(*)") -> dict[tuple, tuple]:
    """{key values: measure values} of marts.<table> grouped by the key expressions."""
    grouping = ", ".join(keys)
    rows = spark.sql(f"select {grouping}, {measures} from marts.{table} where {where} group by {grouping}").collect()
    return {tuple(row[: len(keys)]): tuple(row[len(keys) :]) for row in rows}


def _partitions(spark, table: str) -> list[dict[str, str]]:
    rows = spark.sql(f"show partitions marts.{table}").collect()
    return [dict(part.split("=", 1) for part in row[0].split("/")) for row in rows]


# --- the example queries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "campaign"),
    [(DAY_1, DAY_2, None), (DAY_2, DAY_2, CAMPAIGN)],
    ids=["all-campaigns-both-days", "one-campaign-one-day"],
)
def test_campaign_performance_reconciles_with_the_facts(spark, built_warehouse, start, end, campaign):
    rows = _run(
        spark,
        "campaign_performance.sql",
        param_start_date=start,
        param_end_date=end,
        param_campaign_id=campaign,
    )
    *campaigns, total = rows
    assert total.campaign_id == "(all campaigns)" and campaigns
    where = _in_range(start, end, campaign)
    impressions = _counts(spark, "fct_impressions", where, ["campaign_id"], "count(*), sum(cost_usd)")
    clicks = _counts(spark, "fct_clicks", where, ["campaign_id"])
    conversions = _counts(
        spark,
        "fct_conversions",
        where,
        ["campaign_id"],
        "count(*), count_if(is_attributed), sum(case when is_attributed then conversion_value_usd end)",
    )
    assert {row.campaign_id for row in campaigns} == {key[0] for key in impressions}
    if campaign:
        assert [row.campaign_id for row in campaigns] == [campaign]
    days = (end - start).days + 1
    rounding = Decimal("0.0000005") * days  # agg_campaign_daily rounds each day's money to 6 decimals
    for row in campaigns:
        key = (row.campaign_id,)
        facts_impressions, facts_spend = impressions[key]
        facts_conversions, facts_attributed, facts_revenue = conversions.get(key, (0, 0, None))
        assert (row.impressions, row.clicks, row.conversions, row.attributed_conversions) == (
            facts_impressions,
            clicks.get(key, (0,))[0],
            facts_conversions,
            facts_attributed,
        ), row.campaign_id
        assert abs(row.spend_usd - facts_spend) <= rounding, row.campaign_id
        assert abs(row.revenue_usd - (facts_revenue or 0)) <= rounding, row.campaign_id
        assert abs(row.ctr - row.clicks / row.impressions) <= 5e-7
        assert (row.first_day, row.last_day) == (start, end)
    assert total.impressions == sum(row.impressions for row in campaigns) == sum(v[0] for v in impressions.values())
    assert total.clicks == sum(v[0] for v in clicks.values()) > 0
    assert total.conversions == sum(v[0] for v in conversions.values()) > 0
    assert total.spend_usd == sum(row.spend_usd for row in campaigns) > 0
    assert 0 < total.ctr < 1 and total.cvr is not None


@pytest.mark.parametrize("campaign", [None, CAMPAIGN], ids=["all-campaigns", "one-campaign"])
def test_funnel_by_demographic_reconciles_with_the_facts(spark, built_warehouse, campaign):
    rows = _run(
        spark, "funnel_by_demographic.sql", param_start_date=DAY_1, param_end_date=DAY_2, param_campaign_id=campaign
    )
    funnel = {
        (row.age_band, row.gender, row.user_region): (
            row.impressions,
            row.clicks,
            row.conversions,
            row.attributed_conversions,
        )
        for row in rows
    }
    assert len(funnel) == len(rows) > 1
    where = _in_range(DAY_1, DAY_2, campaign)
    keys = [f"coalesce({column}, 'unknown')" for column in ("age_band", "gender", "user_region")]
    impressions = _counts(spark, "fct_impressions", where, keys)
    clicks = _counts(spark, "fct_clicks", where, keys)
    conversions = _counts(spark, "fct_conversions", where, keys, "count(*), count_if(is_attributed)")
    expected = {
        group: (
            impressions.get(group, (0,))[0],
            clicks.get(group, (0,))[0],
            *conversions.get(group, (0, 0)),
        )
        for group in impressions.keys() | clicks.keys() | conversions.keys()
    }
    assert funnel == expected
    known = {group for group in funnel if "unknown" not in group}
    assert len({age_band for age_band, _, _ in known}) > 1, "no demographics reached the facts"
    assert sum(v[1] for v in funnel.values()) > 0 and sum(v[2] for v in funnel.values()) > 0
    assert [row.impressions for row in rows] == sorted((row.impressions for row in rows), reverse=True)


def test_rtb_win_rate_by_exchange_reconciles_with_the_bid_requests(spark, built_warehouse):
    rows = _run(spark, "rtb_win_rate_by_exchange.sql", param_start_date=DAY_1, param_end_date=DAY_2)
    assert len(rows) > 1
    direct = spark.sql(
        f"""
        with served as (
            select distinct bid_request_id from marts.fct_impressions where bid_request_id is not null
        )
        select
            requests.exchange,
            count(*) as bid_requests,
            count_if(requests.is_bid) as bids,
            count_if(requests.is_win) as wins,
            count_if(requests.is_win and served.bid_request_id is not null) as served,
            avg(case when requests.is_win then requests.clearing_price_cpm end) as clearing_price
        from staging.stg_rtb__bid_requests as requests
        left join served on requests.bid_request_id = served.bid_request_id
        where {_in_range(DAY_1, DAY_2, None)}
        group by requests.exchange
        """
    ).collect()
    expected = {row.exchange: row for row in direct}
    assert {row.exchange for row in rows} == expected.keys()
    for row in rows:
        facts = expected[row.exchange]
        assert (row.bid_requests, row.bids, row.wins, row.impressions_served) == (
            facts.bid_requests,
            facts.bids,
            facts.wins,
            facts.served,
        ), row.exchange
        assert abs(row.win_rate - row.wins / row.bids) <= 5e-7
        assert 0 < row.win_rate < 1 and 0 < row.bid_rate <= 1
        assert abs(float(row.avg_clearing_price_cpm) - float(facts.clearing_price)) < 1e-5, row.exchange
    assert [row.win_rate for row in rows] == sorted((row.win_rate for row in rows), reverse=True)


def test_campaign_delivery_by_site_reconciles_with_the_facts(spark, built_warehouse):
    rows = _run(
        spark, "campaign_delivery_by_site.sql", param_start_date=DAY_2, param_end_date=DAY_2, param_campaign_id=CAMPAIGN
    )
    expected = _counts(
        spark,
        "fct_impressions",
        _in_range(DAY_2, DAY_2, CAMPAIGN),
        ["site_domain", "device_type"],
        "count(*), count_if(is_clicked), sum(cost_usd)",
    )
    assert len(rows) > 1
    assert {
        (row.site_domain, row.device_type): (row.impressions, row.clicked_impressions, row.spend_usd) for row in rows
    } == expected
    assert sum(row.clicked_impressions for row in rows) > 0


def test_ctr_by_user_frequency_reconciles_with_the_facts(spark, built_warehouse):
    rows = _run(spark, "ctr_by_user_frequency.sql", param_start_date=DAY_1, param_end_date=DAY_2)
    where = _in_range(DAY_1, DAY_2, None)
    [facts] = spark.sql(
        f"""
        with impressions as (select user_id, count(*) as n from marts.fct_impressions where {where} group by user_id)
        select
            (select count(*) from impressions) as users,
            (select sum(n) from impressions) as impressions,
            (select count(*) from marts.fct_clicks where {where}
                and user_id in (select user_id from impressions)) as clicks,
            (select count(distinct user_id) from marts.fct_clicks where {where}
                and user_id in (select user_id from impressions)) as users_who_clicked,
            (select count(*) from impressions where n = 1) as users_with_one
        """
    ).collect()
    assert [row.impressions_per_user for row in rows][:2] == ["1", "2"]
    assert sum(row.users for row in rows) == facts.users
    assert sum(row.impressions for row in rows) == facts.impressions
    assert sum(row.clicks for row in rows) == facts.clicks > 0
    assert sum(row.users_who_clicked for row in rows) == facts.users_who_clicked
    assert rows[0].users == rows[0].impressions == facts.users_with_one


# --- the table layout, proven on the plans ----------------------------------------------------------------------


def _scan_metrics(dataframe, table: str) -> dict[str, int]:
    """SQL metrics of the executed scan of `table` (after an action), through the JVM plan: e.g. numPartitions
    ("number of partitions read") and numFiles ("number of files read")."""

    def walk(node):
        yield node
        kind = node.getClass().getSimpleName()
        if kind == "AdaptiveSparkPlanExec":
            yield from walk(node.executedPlan())
        elif kind.endswith("QueryStageExec"):
            yield from walk(node.plan())
        else:
            children = node.children()
            for i in range(children.size()):
                yield from walk(children.apply(i))

    for node in walk(dataframe._jdf.queryExecution().executedPlan()):
        if node.getClass().getSimpleName() == "FileSourceScanExec" and node.tableIdentifier().get().table() == table:
            metrics = node.metrics()
            return {name: metrics.apply(name).value() for name in ("numPartitions", "numFiles")}
    raise AssertionError(f"no executed scan of {table}")


def test_a_filter_on_campaign_and_date_reads_only_those_partitions(spark, built_warehouse):
    partitions = _partitions(spark, "fct_impressions")
    selected = [p for p in partitions if p["campaign_id"] == CAMPAIGN and p["event_date"] == str(DAY_2)]
    assert len(selected) == 1 and len(partitions) > 10
    query = _query(spark, "campaign_delivery_by_site.sql", param_start_date=DAY_2, param_end_date=DAY_2)

    # The plan: partition filters on both columns, a file index of the selected partition folders only.
    plan = spark.sql(f"explain formatted {query}").first()[0]
    read = assert_prunes_partitions(plan, "marts.fct_impressions", ["campaign_id", "event_date"], len(partitions))
    assert read == len(selected)
    # The tree form (EXPLAIN, executedPlan().toString()) says the same.
    tree = spark.sql(f"explain {query}").first()[0]
    assert assert_prunes_partitions(tree, "marts.fct_impressions", ["campaign_id", "event_date"], len(partitions)) == 1

    # The execution: Spark's own metrics of the scan, and the files the query reads against the table's.
    frame = spark.sql(query)
    frame.collect()
    metrics = _scan_metrics(frame, "fct_impressions")
    folder = f"/event_date={DAY_2}/campaign_id={CAMPAIGN}/"
    table_files = spark.table("marts.fct_impressions").inputFiles()
    query_files = frame.inputFiles()
    assert metrics["numPartitions"] == len(selected) < len(partitions)
    assert metrics["numFiles"] == len(query_files) == sum(folder in f for f in table_files) < len(table_files)
    assert all(folder in f for f in query_files)

    # The control: without the filters the same assertion fails.
    whole = spark.sql("explain formatted select site_domain, count(*) from marts.fct_impressions group by 1")
    with pytest.raises(AssertionError, match="partition filter on campaign_id"):
        assert_prunes_partitions(whole.first()[0], "marts.fct_impressions", ["campaign_id", "event_date"])
    dates_only = spark.sql(
        f"explain formatted select count(*) from marts.fct_impressions where {_in_range(DAY_1, DAY_2, None)}"
    )
    with pytest.raises(AssertionError, match=f"reads {len(partitions)} of {len(partitions)} partitions"):
        assert_prunes_partitions(dates_only.first()[0], "marts.fct_impressions", ["event_date"], len(partitions))


def test_the_facts_are_bucketed_by_user_id_into_the_configured_buckets(spark, built_warehouse):
    buckets = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]["user_buckets"]
    for table in ("fct_impressions", "fct_clicks", "fct_conversions"):
        details = {row[0]: row[1] for row in spark.sql(f"describe table extended marts.{table}").collect()}
        assert (details["Num Buckets"], details["Bucket Columns"]) == (str(buckets), "[`user_id`]"), table
        lake = Path(built_warehouse.settings.resolved_lake_uri) / "marts.db" / table
        # Spark names a bucketed file part-<task>-<write id>_<bucket id>.c000.snappy.parquet.
        bucket_ids = {int(p.name.split(".")[0].rsplit("_", 1)[1]) for p in lake.rglob("part-*.parquet")}
        assert bucket_ids and bucket_ids <= set(range(buckets)), (table, bucket_ids)
        if table == "fct_impressions":
            assert bucket_ids == set(range(buckets))


JOIN = "select count(*) from marts.fct_impressions as i join marts.fct_clicks as c on i.user_id = c.user_id"


def test_a_join_on_user_id_of_two_bucketed_facts_does_not_shuffle(spark, built_warehouse):
    frequency = _query(spark, "ctr_by_user_frequency.sql", param_start_date=DAY_1, param_end_date=DAY_2)
    threshold = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    with _conf(spark, {"spark.sql.autoBroadcastJoinThreshold": "-1"}):  # else the smaller side is broadcast
        for query in (JOIN, frequency):
            plan = spark.sql(f"explain formatted {query}").first()[0]
            assert_no_shuffle_join(plan)
            assert all(scan.bucketed == "true" for scan in scans(plan)), scans(plan)
        bucketed = spark.sql(JOIN)
        [[joined_rows]] = bucketed.collect()
        assert_no_shuffle_join(bucketed._jdf.queryExecution().executedPlan().toString())  # the final AQE plan

        # The control: the same join without bucketing shuffles both sides, and the assertion fails on it.
        with _conf(spark, {"spark.sql.sources.bucketing.enabled": "false"}):
            plan = spark.sql(f"explain formatted {JOIN}").first()[0]
            [shuffles] = shuffles_under_sort_merge_joins(plan).values()
            assert len(shuffles) == 2, shuffles
            with pytest.raises(AssertionError, match="shuffles its input"):
                assert_no_shuffle_join(plan)
            # Same answer: every row sits in the bucket of its user_id, or the bucketed join would miss matches.
            assert spark.sql(JOIN).first()[0] == joined_rows > 0
    assert spark.conf.get("spark.sql.autoBroadcastJoinThreshold") == threshold
