{#- Each valid click with the impression it came from: the latest impression of the same user, campaign and ad at
    or before the click, at most click_to_impression_window_hours earlier; ties on time go to the greatest id. -#}
{% set impression_days = adx.window_days(var('click_to_impression_window_hours')) %}

with

clicks as (
    select * from {{ ref('stg_tracking__clicks') }}
    where {{ adx.incremental_date_window('event_date', arrival_column='_ingest_date') }}
),

impressions as (
    select impression_id, impression_at, user_id, campaign_id, ad_id from {{ ref('stg_adserver__impressions') }}
    where {{ adx.incremental_date_window('event_date', extra_days=impression_days, arrival_column='_ingest_date') }}
),

candidate_impressions as (
    select
        clicks.click_id,
        impressions.impression_id,
        impressions.impression_at,
        row_number() over (
            partition by clicks.click_id
            order by impressions.impression_at desc, impressions.impression_id desc
        ) as recency_rank
    from clicks
    inner join impressions
        on
            clicks.user_id = impressions.user_id
            and clicks.campaign_id = impressions.campaign_id
            and clicks.ad_id = impressions.ad_id
            and impressions.impression_at <= clicks.clicked_at
            and impressions.impression_at
            >= clicks.clicked_at - make_dt_interval(0, {{ var('click_to_impression_window_hours') | int }})
)

select
    clicks.click_id,
    clicks.clicked_at,
    clicks.event_date,
    clicks.user_id,
    clicks.campaign_id,
    clicks.ad_id,
    clicks.device_type,
    clicks.landing_page_url,
    matched.impression_id,
    matched.impression_at,
    matched.impression_id is not null as has_impression
from clicks
left join candidate_impressions as matched
    on clicks.click_id = matched.click_id and matched.recency_rank = 1
