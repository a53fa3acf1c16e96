with

validated as (
    select * from {{ ref('base_tracking__clicks_validated') }}
)

select
    click_id,
    raw_click_time,
    user_id,
    campaign_id,
    rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is not null
