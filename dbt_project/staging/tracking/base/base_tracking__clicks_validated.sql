with

clicks as (
    select * from {{ source('tracking', 'clicks') }}
    where {{ adx.arrival_window() }}
),

campaigns as (
    select campaign_id from {{ ref('campaigns') }}
),

parsed as (
    select
        nullif(trim(click_id), '') as click_id,
        {{ adx.parse_utc_timestamp('click_time') }} as clicked_at,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(campaign_id), '') as campaign_id,
        nullif(trim(ad_id), '') as ad_id,
        {{ adx.standardize_device_type('device_type') }} as device_type,
        nullif(trim(landing_page_url), '') as landing_page_url,
        click_time as raw_click_time,
        _source_file,
        _batch_id,
        _loaded_at,
        _ingest_date
    from clicks
),

checked as (
    select
        parsed.*,
        case
            when parsed.click_id is null then 'missing_event_id'
            when parsed.clicked_at is null then 'invalid_timestamp'
            when campaigns.campaign_id is null then 'unknown_campaign'
        end as rule_violation
    from parsed
    left join campaigns on parsed.campaign_id = campaigns.campaign_id
),

numbered as (
    select
        *,
        row_number() over (
            partition by click_id
            order by rule_violation is null desc, _ingest_date, _source_file, clicked_at
        ) as copy_number
    from checked
),

flagged as (
    {{ adx.flag_later_copies('numbered', 'click_id') }}
)

select
    click_id,
    clicked_at,
    to_date(clicked_at) as event_date,
    {{ adx.pseudonymise('user_id') }} as user_id,
    campaign_id,
    ad_id,
    device_type,
    landing_page_url,
    raw_click_time,
    coalesce(rule_violation, case when is_later_copy then 'duplicate_event_id' end) as rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from flagged
