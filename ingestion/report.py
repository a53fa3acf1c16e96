"""The campaign-performance summary printed by `adx report`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CAMPAIGN_SUMMARY_SQL = """
select
    campaign_id,
    campaign_name,
    advertiser_name,
    sum(impressions) as impressions,
    sum(clicks) as clicks,
    sum(attributed_conversions) as conversions,
    cast(sum(spend_usd) as decimal(18, 2)) as spend_usd,
    cast(sum(revenue_usd) as decimal(18, 2)) as revenue_usd,
    cast(100 * sum(clicks) / nullif(sum(impressions), 0) as decimal(8, 3)) as ctr_pct,
    cast(sum(spend_usd) / nullif(sum(attributed_conversions), 0) as decimal(18, 2)) as cpa_usd,
    cast(sum(revenue_usd) / nullif(sum(spend_usd), 0) as decimal(10, 2)) as roas
from marts.agg_campaign_daily
group by campaign_id, campaign_name, advertiser_name
order by spend_usd desc
"""

PERIOD_SQL = """
select min(event_date) as first_day, max(event_date) as last_day, sum(impressions) as impressions,
       sum(clicks) as clicks, sum(conversions) as conversions, sum(attributed_conversions) as attributed,
       cast(sum(spend_usd) as decimal(18, 2)) as spend_usd, cast(sum(revenue_usd) as decimal(18, 2)) as revenue_usd
from marts.agg_campaign_daily
"""

RTB_SQL = """
select exchange, sum(bid_requests) as bid_requests, sum(bids) as bids, sum(wins) as wins,
       cast(sum(wins) / nullif(sum(bids), 0) as decimal(8, 4)) as win_rate
from marts.agg_rtb_daily
group by exchange
order by exchange
"""


def campaign_report(spark: SparkSession) -> list[tuple[str, list[str], list[tuple]]]:
    """(title, columns, rows) sections of the report."""
    sections = []
    for title, sql in (
        ("Period", PERIOD_SQL),
        ("Campaign performance (all days)", CAMPAIGN_SUMMARY_SQL),
        ("RTB by exchange", RTB_SQL),
    ):
        frame = spark.sql(sql)
        sections.append((title, frame.columns, [tuple(row) for row in frame.collect()]))
    return sections
