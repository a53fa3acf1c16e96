{{ config(partition_by=['event_date']) }}

with

impressions as (
    select
        event_date,
        campaign_id,
        count(*) as impressions,
        sum(cost_usd) as spend_usd
    from {{ ref('fct_impressions') }}
    where {{ adx.incremental_date_window('event_date') }}
    group by event_date, campaign_id
),

clicks as (
    select
        event_date,
        campaign_id,
        count(*) as clicks
    from {{ ref('fct_clicks') }}
    where {{ adx.incremental_date_window('event_date') }}
    group by event_date, campaign_id
),

conversions as (
    select
        event_date,
        campaign_id,
        count(*) as conversions,
        count_if(is_attributed) as attributed_conversions,
        sum(case when is_attributed then conversion_value_usd end) as revenue_usd
    from {{ ref('fct_conversions') }}
    where {{ adx.incremental_date_window('event_date') }}
    group by event_date, campaign_id
),

campaign_days as (
    select event_date, campaign_id from impressions
    union
    select event_date, campaign_id from clicks
    union
    select event_date, campaign_id from conversions
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

measures as (
    select
        campaign_days.event_date,
        campaign_days.campaign_id,
        coalesce(impressions.impressions, 0) as impressions,
        coalesce(clicks.clicks, 0) as clicks,
        coalesce(conversions.conversions, 0) as conversions,
        coalesce(conversions.attributed_conversions, 0) as attributed_conversions,
        coalesce(impressions.spend_usd, 0) as spend_usd_exact,
        coalesce(conversions.revenue_usd, 0) as revenue_usd_exact
    from campaign_days
    left join impressions
        on campaign_days.event_date = impressions.event_date and campaign_days.campaign_id = impressions.campaign_id
    left join clicks
        on campaign_days.event_date = clicks.event_date and campaign_days.campaign_id = clicks.campaign_id
    left join conversions
        on campaign_days.event_date = conversions.event_date and campaign_days.campaign_id = conversions.campaign_id
)

select
    measures.campaign_id,
    campaigns.campaign_name,
    campaigns.advertiser_id,
    campaigns.advertiser_name,
    measures.impressions,
    measures.clicks,
    measures.conversions,
    measures.attributed_conversions,
    cast(round(measures.spend_usd_exact, 6) as decimal(18, 6)) as spend_usd,
    cast(round(measures.revenue_usd_exact, 6) as decimal(18, 6)) as revenue_usd,
    {{ adx.safe_ratio('measures.clicks', 'measures.impressions') }} as ctr,
    {{ adx.safe_ratio('measures.conversions', 'measures.clicks') }} as cvr,
    {{ adx.safe_ratio('measures.spend_usd_exact', 'measures.clicks') }} as cpc_usd,
    {{ adx.safe_ratio('measures.spend_usd_exact * 1000', 'measures.impressions') }} as cpm_usd,
    {{ adx.safe_ratio('measures.spend_usd_exact', 'measures.attributed_conversions') }} as cpa_usd,
    {{ adx.safe_ratio('measures.revenue_usd_exact', 'measures.spend_usd_exact') }} as roas,
    measures.event_date
from measures
left join campaigns on measures.campaign_id = campaigns.campaign_id
