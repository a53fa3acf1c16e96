{{ config(partition_by=['event_date']) }}

with

bid_requests as (
    select * from {{ ref('int_bid_requests_joined_to_impressions') }}
    where {{ adx.incremental_date_window('event_date') }}
),

daily as (
    select
        event_date,
        exchange,
        campaign_id,
        count(*) as bid_requests,
        count_if(is_bid) as bids,
        count_if(is_win) as wins,
        count_if(is_served) as impressions_served,
        sum(case when is_win then clearing_price_cpm end) as clearing_price_cpm_sum
    from bid_requests
    group by event_date, exchange, campaign_id
)

select
    exchange,
    campaign_id,
    bid_requests,
    bids,
    wins,
    impressions_served,
    {{ adx.safe_ratio('bids', 'bid_requests') }} as bid_rate,
    {{ adx.safe_ratio('wins', 'bids') }} as win_rate,
    {{ adx.safe_ratio('clearing_price_cpm_sum', 'wins') }} as avg_clearing_price_cpm,
    event_date
from daily
