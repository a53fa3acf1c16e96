{#- Each valid bid request with the impression served for it when the auction was won. -#}
with

bid_requests as (
    select * from {{ ref('stg_rtb__bid_requests') }}
    where {{ adx.incremental_date_window('event_date', arrival_column='_ingest_date') }}
),

rtb_impressions as (
    -- At most one impression per request (the first logged), so that the join cannot duplicate a request.
    select
        bid_request_id,
        min_by(impression_id, struct(impression_at, impression_id)) as impression_id,
        min(impression_at) as impression_at
    from {{ ref('stg_adserver__impressions') }}
    where
        bid_request_id is not null
        -- served at or after its request; a day earlier as well, for a request logged after its impression
        and {{ adx.incremental_date_window('event_date', extra_days=1, arrival_column='_ingest_date') }}
    group by bid_request_id
)

select
    bid_requests.bid_request_id,
    bid_requests.requested_at,
    bid_requests.event_date,
    bid_requests.exchange,
    bid_requests.auction_type,
    bid_requests.ad_format,
    bid_requests.inventory_type,
    bid_requests.device_type,
    bid_requests.country_code_alpha3,
    bid_requests.user_id,
    bid_requests.campaign_id,
    bid_requests.bid_floor_cpm,
    bid_requests.is_bid,
    bid_requests.bid_price_cpm,
    bid_requests.is_win,
    bid_requests.clearing_price_cpm,
    rtb_impressions.impression_id,
    rtb_impressions.impression_at,
    bid_requests.is_win and rtb_impressions.impression_id is not null as is_served
from bid_requests
left join rtb_impressions on bid_requests.bid_request_id = rtb_impressions.bid_request_id
