{#- Each valid conversion with its attribution (docs/data_contract.md#attribution): the last click of the same user
    and campaign within click_through_window_hours, else the last impression within view_through_window_hours
    (view-through), else unattributed. Both window ends are inclusive; ties on time go to the greatest id. -#}
{% set click_days = adx.window_days(var('click_through_window_hours')) %}
{% set view_days = adx.window_days(var('view_through_window_hours')) %}

with

conversions as (
    select * from {{ ref('stg_tracking__conversions') }}
    where {{ adx.incremental_date_window('event_date', arrival_column='_ingest_date') }}
),

clicks as (
    select click_id, clicked_at, user_id, campaign_id from {{ ref('stg_tracking__clicks') }}
    where {{ adx.incremental_date_window('event_date', extra_days=click_days, arrival_column='_ingest_date') }}
),

impressions as (
    select impression_id, impression_at, user_id, campaign_id from {{ ref('stg_adserver__impressions') }}
    where {{ adx.incremental_date_window('event_date', extra_days=view_days, arrival_column='_ingest_date') }}
),

candidate_clicks as (
    select
        conversions.conversion_id,
        clicks.click_id,
        clicks.clicked_at,
        row_number() over (
            partition by conversions.conversion_id
            order by clicks.clicked_at desc, clicks.click_id desc
        ) as recency_rank
    from conversions
    inner join clicks
        on
            conversions.user_id = clicks.user_id
            and conversions.campaign_id = clicks.campaign_id
            and clicks.clicked_at <= conversions.converted_at
            and clicks.clicked_at
            >= conversions.converted_at - make_dt_interval(0, {{ var('click_through_window_hours') | int }})
),

candidate_views as (
    select
        conversions.conversion_id,
        impressions.impression_id,
        impressions.impression_at,
        row_number() over (
            partition by conversions.conversion_id
            order by impressions.impression_at desc, impressions.impression_id desc
        ) as recency_rank
    from conversions
    inner join impressions
        on
            conversions.user_id = impressions.user_id
            and conversions.campaign_id = impressions.campaign_id
            and impressions.impression_at <= conversions.converted_at
            and impressions.impression_at
            >= conversions.converted_at - make_dt_interval(0, {{ var('view_through_window_hours') | int }})
),

attributed as (
    select
        conversions.*,
        last_click.click_id as attributed_click_id,
        last_click.clicked_at as attributed_clicked_at,
        case when last_click.click_id is null then last_view.impression_id end as attributed_impression_id,
        case when last_click.click_id is null then last_view.impression_at end as attributed_impression_at,
        case
            when last_click.click_id is not null then 'click'
            when last_view.impression_id is not null then 'view_through'
            else 'unattributed'
        end as attribution_type
    from conversions
    left join candidate_clicks as last_click
        on conversions.conversion_id = last_click.conversion_id and last_click.recency_rank = 1
    left join candidate_views as last_view
        on conversions.conversion_id = last_view.conversion_id and last_view.recency_rank = 1
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
    attribution_type,
    attribution_type != 'unattributed' as is_attributed,
    attributed_click_id,
    attributed_clicked_at,
    attributed_impression_id,
    attributed_impression_at,
    (unix_millis(converted_at) - unix_millis(coalesce(attributed_clicked_at, attributed_impression_at)))
    / 1000 as seconds_to_convert
from attributed
