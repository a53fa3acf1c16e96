with

validated as (
    select * from {{ ref('base_rtb__bid_requests_validated') }}
)

select
    bid_request_id,
    requested_at,
    exchange,
    campaign_id,
    is_bid,
    bid_floor_cpm,
    bid_price_cpm,
    is_win,
    clearing_price_cpm,
    rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is not null
