-- Campaign performance over a date range: impressions, clicks, conversions, spend and revenue, with CTR, CVR,
-- CPC, CPM, CPA and ROAS, one row per campaign plus a last row for all of them together.
--
-- Parameters (edit the defaults, or `set var <name> = <value>;` in your session and rerun the select):
--   param_start_date, param_end_date: first and last UTC event_date, both included.
--   param_campaign_id: one campaign, e.g. 'cmp_001'; null for every campaign.
--
-- Reads marts.agg_campaign_daily (one row per day and campaign, partitioned by event_date): the date range
-- reads only its own partitions. Ratios divide the range's totals (not an average of daily ratios), with the
-- definitions of docs/data_contract.md: ctr = clicks / impressions, cvr = conversions / clicks,
-- cpa = spend / attributed_conversions, roas = revenue / spend; null when the denominator is 0.

declare or replace variable param_start_date date default date'2026-11-01';
declare or replace variable param_end_date date default date'2026-11-07';
declare or replace variable param_campaign_id string default null;

with

campaign_days as (
    select *
    from marts.agg_campaign_daily
    where
        event_date between param_start_date and param_end_date
        and (param_campaign_id is null or campaign_id = param_campaign_id)
),

totals as (
    select
        grouping(campaign_id) = 1 as is_total,
        campaign_id,
        campaign_name,
        advertiser_name,
        min(event_date) as first_day,
        max(event_date) as last_day,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(attributed_conversions) as attributed_conversions,
        sum(spend_usd) as spend_usd,
        sum(revenue_usd) as revenue_usd
    from campaign_days
    group by grouping sets ((campaign_id, campaign_name, advertiser_name), ())
)

select
    case when is_total then '(all campaigns)' else campaign_id end as campaign_id,
    campaign_name,
    advertiser_name,
    first_day,
    last_day,
    impressions,
    clicks,
    conversions,
    attributed_conversions,
    spend_usd,
    revenue_usd,
    round(clicks / nullif(impressions, 0), 6) as ctr,
    round(conversions / nullif(clicks, 0), 6) as cvr,
    round(spend_usd / nullif(clicks, 0), 6) as cpc_usd,
    round(1000 * spend_usd / nullif(impressions, 0), 6) as cpm_usd,
    round(spend_usd / nullif(attributed_conversions, 0), 6) as cpa_usd,
    round(revenue_usd / nullif(spend_usd, 0), 6) as roas
from totals
order by is_total, campaign_id
