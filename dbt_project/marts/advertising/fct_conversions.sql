{{
    config(
        partition_by=['event_date', 'campaign_id'],
        clustered_by=['user_id'],
        buckets=var('user_buckets'),
    )
}}

with

conversions as (
    select * from {{ ref('int_conversions_attributed') }}
    where {{ adx.incremental_date_window('event_date') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

users as (
    select * from {{ ref('dim_users') }}
)

select
    conversions.conversion_id,
    conversions.converted_at,
    conversions.user_id,
    campaigns.advertiser_id,
    campaigns.advertiser_name,
    campaigns.campaign_name,
    conversions.conversion_type,
    conversions.conversion_value,
    conversions.conversion_currency,
    conversions.conversion_value_usd,
    conversions.attribution_type,
    conversions.is_attributed,
    conversions.attributed_click_id,
    conversions.attributed_impression_id,
    conversions.seconds_to_convert,
    users.age_band,
    users.gender,
    users.region as user_region,
    conversions.event_date,
    conversions.campaign_id
from conversions
left join campaigns on conversions.campaign_id = campaigns.campaign_id
left join users on conversions.user_id = users.user_id
