with

validated as (
    select * from {{ ref('base_tracking__clicks_validated') }}
)

select
    click_id,
    clicked_at,
    event_date,
    user_id,
    campaign_id,
    ad_id,
    device_type,
    landing_page_url,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is null
