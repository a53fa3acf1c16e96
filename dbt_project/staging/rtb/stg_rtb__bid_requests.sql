with

validated as (
    select * from {{ ref('base_rtb__bid_requests_validated') }}
)

select
    bid_request_id,
    requested_at,
    event_date,
    exchange,
    auction_type,
    timeout_ms,
    imp_id,
    ad_format,
    ad_width,
    ad_height,
    bid_floor_cpm,
    inventory_type,
    inventory_id,
    device_type,
    device_os,
    country_code_alpha3,
    geo_region,
    user_id,
    campaign_id,
    is_bid,
    bid_price_cpm,
    is_win,
    clearing_price_cpm,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is null
