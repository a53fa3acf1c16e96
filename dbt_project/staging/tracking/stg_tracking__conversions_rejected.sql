with

validated as (
    select * from {{ ref('base_tracking__conversions_validated') }}
)

select
    conversion_id,
    raw_conversion_time,
    user_id,
    campaign_id,
    raw_value,
    conversion_currency,
    rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is not null
