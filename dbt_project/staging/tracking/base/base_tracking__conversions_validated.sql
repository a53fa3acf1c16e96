with

conversions as (
    select * from {{ source('tracking', 'conversions') }}
    where {{ adx.arrival_window() }}
),

campaigns as (
    select campaign_id from {{ ref('campaigns') }}
),

currency_rates as (
    select currency, usd_rate from {{ ref('currency_rates') }}
),

parsed as (
    select
        nullif(trim(conversion_id), '') as conversion_id,
        {{ adx.parse_utc_timestamp('conversion_time') }} as converted_at,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(campaign_id), '') as campaign_id,
        lower(nullif(trim(conversion_type), '')) as conversion_type,
        try_cast(trim(value) as decimal(18, 6)) as conversion_value,
        -- A value with more than 6 decimals (or over 12 integer digits) would be rounded: reject it instead.
        try_cast(trim(value) as decimal(38, 18)) as conversion_value_exact,
        upper(trim(currency)) as conversion_currency,
        conversion_time as raw_conversion_time,
        value as raw_value,
        _source_file,
        _batch_id,
        _loaded_at,
        _ingest_date
    from conversions
),

checked as (
    select
        parsed.*,
        parsed.conversion_value * currency_rates.usd_rate as conversion_value_usd,
        case
            when parsed.conversion_id is null then 'missing_event_id'
            when parsed.converted_at is null then 'invalid_timestamp'
            when campaigns.campaign_id is null then 'unknown_campaign'
            when
                parsed.conversion_value is null
                or parsed.conversion_value != parsed.conversion_value_exact
                or parsed.conversion_value < 0
                or currency_rates.usd_rate is null
                then 'invalid_amount'
        end as rule_violation
    from parsed
    left join campaigns on parsed.campaign_id = campaigns.campaign_id
    left join currency_rates on parsed.conversion_currency = currency_rates.currency
),

numbered as (
    select
        *,
        row_number() over (
            partition by conversion_id
            order by rule_violation is null desc, _ingest_date, _source_file, converted_at
        ) as copy_number
    from checked
),

flagged as (
    {{ adx.flag_later_copies('numbered', 'conversion_id') }}
)

select
    conversion_id,
    converted_at,
    to_date(converted_at) as event_date,
    {{ adx.pseudonymise('user_id') }} as user_id,
    campaign_id,
    conversion_type,
    conversion_value,
    conversion_currency,
    cast(conversion_value_usd as decimal(24, 12)) as conversion_value_usd,
    raw_conversion_time,
    raw_value,
    coalesce(rule_violation, case when is_later_copy then 'duplicate_event_id' end) as rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from flagged
