{{
    config(
        partition_by=['event_date', 'campaign_id'],
        clustered_by=['user_id'],
        buckets=var('user_buckets'),
    )
}}

{% set click_days = adx.window_days(var('click_to_impression_window_hours')) %}

with

impressions as (
    select * from {{ ref('stg_adserver__impressions') }}
    -- is_clicked depends on clicks up to click_to_impression_window_hours later: widen the window by that much.
    where {{ adx.incremental_date_window('event_date', extra_days=click_days, arrival_column='_ingest_date') }}
),

clicked_impressions as (
    -- the clicks of those impressions happened on their dates or later
    select distinct impression_id from {{ ref('int_clicks_matched_to_impressions') }}
    where has_impression and {{ adx.incremental_date_window('event_date', extra_days=click_days) }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

countries as (
    select * from {{ ref('geo_countries') }}
)

select
    impressions.impression_id,
    impressions.impression_at,
    impressions.user_id,
    campaigns.advertiser_id,
    campaigns.advertiser_name,
    campaigns.campaign_name,
    campaigns.channel,
    impressions.ad_id,
    impressions.site_domain,
    impressions.device_type,
    impressions.country_code,
    countries.country_name,
    countries.region as country_region,
    users.age_band,
    users.gender,
    users.region as user_region,
    users.interests,
    impressions.bid_request_id,
    impressions.bid_request_id is not null as is_rtb,
    impressions.cost_usd,
    clicked_impressions.impression_id is not null as is_clicked,
    impressions.event_date,
    impressions.campaign_id
from impressions
left join clicked_impressions on impressions.impression_id = clicked_impressions.impression_id
left join campaigns on impressions.campaign_id = campaigns.campaign_id
left join users on impressions.user_id = users.user_id
left join countries on impressions.country_code = countries.country_code
