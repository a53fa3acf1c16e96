with

bid_requests as (
    select * from {{ source('rtb', 'bid_requests') }}
    where {{ adx.arrival_window() }}
),

campaigns as (
    select campaign_id from {{ ref('campaigns') }}
),

flattened as (
    select
        nullif(trim(id), '') as bid_request_id,
        `timestamp` as requested_at,
        lower(trim(exchange)) as exchange,
        case `at` when 1 then 'first_price' when 2 then 'second_price' else 'unknown' end as auction_type,
        tmax as timeout_ms,
        imp[0].id as imp_id,
        case
            when imp[0].video is not null then 'video'
            when imp[0].banner is not null then 'banner'
            else 'unknown'
        end as ad_format,
        coalesce(imp[0].banner.w, imp[0].video.w) as ad_width,
        coalesce(imp[0].banner.h, imp[0].video.h) as ad_height,
        cast(imp[0].bidfloor as decimal(18, 6)) as bid_floor_cpm,
        case when site is not null then 'site' when app is not null then 'app' else 'unknown' end as inventory_type,
        lower(coalesce(site.domain, app.bundle)) as inventory_id,
        {{ adx.openrtb_device_type('device.devicetype') }} as device_type,
        device.os as device_os,
        upper(device.geo.country) as country_code_alpha3,
        device.geo.region as geo_region,
        nullif(trim(`user`.id), '') as user_id,
        nullif(trim(outcome.campaign_id), '') as campaign_id,
        coalesce(outcome.bid, false) as is_bid,
        cast(outcome.bid_price as decimal(18, 6)) as bid_price_cpm,
        coalesce(outcome.win, false) as is_win,
        cast(outcome.clearing_price as decimal(18, 6)) as clearing_price_cpm,
        _source_file,
        _batch_id,
        _loaded_at,
        _ingest_date
    from bid_requests
),

checked as (
    select
        flattened.*,
        case
            when flattened.bid_request_id is null then 'missing_event_id'
            when flattened.requested_at is null then 'invalid_timestamp'
            when campaigns.campaign_id is null then 'unknown_campaign'
            when flattened.bid_floor_cpm < 0 then 'negative_floor'
            when flattened.is_bid and flattened.bid_price_cpm is null then 'bid_without_price'
            when flattened.is_bid and flattened.bid_price_cpm < flattened.bid_floor_cpm then 'bid_below_floor'
            when flattened.is_win and not flattened.is_bid then 'win_without_bid'
            when flattened.is_win and flattened.clearing_price_cpm is null then 'win_without_clearing_price'
            when flattened.is_win and flattened.clearing_price_cpm > flattened.bid_price_cpm
                then 'clearing_price_above_bid'
        end as rule_violation
    from flattened
    left join campaigns on flattened.campaign_id = campaigns.campaign_id
),

numbered as (
    select
        *,
        row_number() over (
            partition by bid_request_id
            order by rule_violation is null desc, _ingest_date, _source_file, requested_at
        ) as copy_number
    from checked
),

flagged as (
    {{ adx.flag_later_copies('numbered', 'bid_request_id') }}
)

select
    bid_request_id,
    requested_at,
    to_date(requested_at) as event_date,
    exchange,
    auction_type,
    timeout_ms,
    imp_id,
    ad_format,
    ad_width,
    ad_height,
    bid_floor_cpm,
    inventory_type,
    inventory_id,
    device_type,
    device_os,
    country_code_alpha3,
    geo_region,
    {{ adx.pseudonymise('user_id') }} as user_id,
    campaign_id,
    is_bid,
    bid_price_cpm,
    is_win,
    clearing_price_cpm,
    coalesce(rule_violation, case when is_later_copy then 'duplicate_event_id' end) as rejection_reason,
    _source_file,
    _batch_id,
    _loaded_at,
    _ingest_date
from flagged
