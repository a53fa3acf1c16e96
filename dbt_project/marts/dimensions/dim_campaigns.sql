with

campaigns as (
    select * from {{ ref('campaigns') }}
),

advertisers as (
    select * from {{ ref('advertisers') }}
)

select
    campaigns.campaign_id,
    campaigns.campaign_name,
    campaigns.advertiser_id,
    advertisers.advertiser_name,
    advertisers.vertical as advertiser_vertical,
    campaigns.channel,
    campaigns.objective,
    campaigns.start_date,
    campaigns.end_date,
    campaigns.daily_budget_usd
from campaigns
left join advertisers on campaigns.advertiser_id = advertisers.advertiser_id
