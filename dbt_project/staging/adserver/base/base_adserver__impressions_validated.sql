with

impressions as (
    select * from {{ source('adserver', 'impressions') }}
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
        nullif(trim(event_id), '') as impression_id,
        {{ adx.parse_utc_timestamp('event_time') }} as impression_at,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(campaign_id), '') as campaign_id,
        nullif(trim(ad_id), '') as ad_id,
        lower(nullif(trim(site_domain), '')) as site_domain,
        {{ adx.standardize_device_type('device_type') }} as device_type,
        {{ adx.standardize_country_code('country') }} as country_code,
        nullif(trim(bid_request_id), '') as bid_request_id,
        try_cast(cost_micros as bigint) as cost_micros,
        upper(trim(currency)) as cost_currency,
        server as web_server,
        event_time as raw_event_time,
        cost_micros as raw_cost_micros,
        _source_file,
        _batch_id,
        _loaded_at,
        _ingest_date
    from impressions
),

checked as (
    select
        parsed.*,
        cast(parsed.cost_micros as decimal(19, 0))
        * currency_rates.usd_rate
        * cast(0.000001 as decimal(7, 6)) as cost_usd,
        case
            when parsed.impression_id is null then 'missing_event_id'
            when parsed.impression_at is null then 'invalid_timestamp'
            when campaigns.campaign_id is null then 'unknown_campaign'
            when parsed.cost_micros is null or parsed.cost_micros < 0 or currency_rates.usd_rate is null
                then 'invalid_amount'
        end as rule_violation
    from parsed
    left join campaigns on parsed.campaign_id = campaigns.campaign_id
    left join currency_rates on parsed.cost_currency = currency_rates.currency
),

numbered as (
    select
        *,
        row_number() over (
            partition by impression_id
            order by rule_violation is null desc, _ingest_date, _source_file, impression_at
        ) as copy_number
    from checked
),

flagged as (
    {{ adx.flag_later_copies('numbered', 'impression_id') }}
)

select
    impression_id,
    impression_at,
    to_date(impression_at) as event_date,
    {{ adx.pseudonymise('user_id') }} as user_id,
    campaign_id,
    ad_id,
    site_domain,
    device_type,
    country_code,
    bid_request_id,
    cost_micros,
    cost_currency,
    cast(cost_usd as decimal(24, 12)) as cost_usd,
    web_server,
    raw_event_time,
    raw_cost_micros,
    coalesce(rule_violation, case when is_later_copy then 'duplicate_event_id' end) as rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from flagged
