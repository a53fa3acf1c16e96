with

validated as (
    select * from {{ ref('base_adserver__impressions_validated') }}
)

select
    impression_id,
    raw_event_time,
    user_id,
    campaign_id,
    raw_cost_micros,
    cost_currency,
    rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from validated
where rejection_reason is not null
