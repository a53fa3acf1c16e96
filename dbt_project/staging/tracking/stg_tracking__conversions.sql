with

validated as (
    select * from {{ ref('base_tracking__conversions_validated') }}
)

select
    conversion_id,
    converted_at,
    event_date,
    user_id,
    campaign_id,
    conversion_type,
    conversion_value,
    conversion_currency,
    conversion_value_usd,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is null
