with

validated as (
    select * from {{ ref('base_adserver__impressions_validated') }}
)

select
    impression_id,
    impression_at,
    event_date,
    user_id,
    campaign_id,
    ad_id,
    site_domain,
    device_type,
    country_code,
    bid_request_id,
    cost_micros,
    cost_currency,
    cost_usd,
    web_server,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is null
