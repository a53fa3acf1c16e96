-- Totals of agg_campaign_daily equal the counts and sums of the fact tables they are built from (on an
-- incremental run, over the event dates it rebuilt).
{% set window = adx.test_window('event_date') %}
with

daily as (
    select
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(attributed_conversions) as attributed_conversions
    from {{ ref('agg_campaign_daily') }}
    where {{ window }}
),

facts as (
    select
        (select count(*) from {{ ref('fct_impressions') }} where {{ window }}) as impressions,
        (select count(*) from {{ ref('fct_clicks') }} where {{ window }}) as clicks,
        (select count(*) from {{ ref('fct_conversions') }} where {{ window }}) as conversions,
        (select count_if(is_attributed) from {{ ref('fct_conversions') }} where {{ window }}) as attributed_conversions
)

select daily.*, facts.*
from daily
cross join facts
where
    daily.impressions != facts.impressions
    or daily.clicks != facts.clicks
    or daily.conversions != facts.conversions
    or daily.attributed_conversions != facts.attributed_conversions
