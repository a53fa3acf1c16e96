{{
    config(
        partition_by=['event_date', 'campaign_id'],
        clustered_by=['user_id'],
        buckets=var('user_buckets'),
    )
}}

with

clicks as (
    select * from {{ ref('int_clicks_matched_to_impressions') }}
    where {{ adx.incremental_date_window('event_date') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

users as (
    select * from {{ ref('dim_users') }}
)

select
    clicks.click_id,
    clicks.clicked_at,
    clicks.user_id,
    campaigns.advertiser_id,
    campaigns.advertiser_name,
    campaigns.campaign_name,
    clicks.ad_id,
    clicks.device_type,
    clicks.landing_page_url,
    clicks.impression_id,
    clicks.impression_at,
    clicks.has_impression,
    users.age_band,
    users.gender,
    users.region as user_region,
    clicks.event_date,
    clicks.campaign_id
from clicks
left join campaigns on clicks.campaign_id = campaigns.campaign_id
left join users on clicks.user_id = users.user_id
