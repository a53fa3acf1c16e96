-- Funnel by demographic: impressions → clicks → conversions per age band, gender and region of residence over
-- a date range, with CTR and CVR for each group, largest groups first.
--
-- Parameters (edit the defaults, or `set var <name> = <value>;` in your session and rerun the select):
--   param_start_date, param_end_date: first and last UTC event_date, both included.
--   param_campaign_id: one campaign, e.g. 'cmp_001'; null for every campaign.
--
-- Reads marts.fct_impressions, fct_clicks and fct_conversions, which carry the user's demographics (from
-- dim_users) on every row; users without demographics show as 'unknown'. Each event counts on its own
-- event_date, as in agg_campaign_daily: a click on the 2nd of an impression of the 1st counts on the 2nd.
-- The facts are partitioned by (event_date, campaign_id): both filters read only the matching partitions.
-- Country is on impressions only (fct_impressions.country_code): split impressions by it there.

declare or replace variable param_start_date date default date'2026-11-01';
declare or replace variable param_end_date date default date'2026-11-07';
declare or replace variable param_campaign_id string default null;

with

impressions as (
    select
        age_band,
        gender,
        user_region,
        count(*) as impressions,
        0 as clicks,
        0 as conversions,
        0 as attributed_conversions
    from marts.fct_impressions
    where
        event_date between param_start_date and param_end_date
        and (param_campaign_id is null or campaign_id = param_campaign_id)
    group by age_band, gender, user_region
),

clicks as (
    select
        age_band,
        gender,
        user_region,
        0 as impressions,
        count(*) as clicks,
        0 as conversions,
        0 as attributed_conversions
    from marts.fct_clicks
    where
        event_date between param_start_date and param_end_date
        and (param_campaign_id is null or campaign_id = param_campaign_id)
    group by age_band, gender, user_region
),

conversions as (
    select
        age_band,
        gender,
        user_region,
        0 as impressions,
        0 as clicks,
        count(*) as conversions,
        count_if(is_attributed) as attributed_conversions
    from marts.fct_conversions
    where
        event_date between param_start_date and param_end_date
        and (param_campaign_id is null or campaign_id = param_campaign_id)
    group by age_band, gender, user_region
),

events as (
    select * from impressions
    union all
    select * from clicks
    union all
    select * from conversions
),

funnel as (
    select
        coalesce(age_band, 'unknown') as age_band,
        coalesce(gender, 'unknown') as gender,
        coalesce(user_region, 'unknown') as user_region,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(attributed_conversions) as attributed_conversions
    from events
    group by 1, 2, 3
)

select
    age_band,
    gender,
    user_region,
    impressions,
    clicks,
    conversions,
    attributed_conversions,
    round(clicks / nullif(impressions, 0), 6) as ctr,
    round(conversions / nullif(clicks, 0), 6) as cvr
from funnel
order by impressions desc, age_band, gender, user_region
