-- Frequency: how the click-through rate changes with the number of impressions a user saw over a date range.
-- One row per frequency (1, 2, ... impressions per user; 10 and more together): users, their impressions,
-- users who clicked, their clicks, and CTR.
--
-- Parameters (edit the defaults, or `set var <name> = <value>;` in your session and rerun the select):
--   param_start_date, param_end_date: first and last UTC event_date, both included.
--   param_campaign_id: one campaign, e.g. 'cmp_001'; null for every campaign (frequency across campaigns).
--
-- Joins marts.fct_impressions and marts.fct_clicks per user_id. Both facts are bucketed by user_id into the
-- same number of buckets, so the per-user aggregates and the join need no shuffle of the facts (EXPLAIN shows
-- no Exchange under the SortMergeJoin). Join facts on user_id alone to keep that: a join on (user_id,
-- campaign_id) shuffles unless `set spark.sql.requireAllClusterKeysForCoPartition=false`. Clicks of users
-- without an impression in the range are not counted.

declare or replace variable param_start_date date default date'2026-11-01';
declare or replace variable param_end_date date default date'2026-11-07';
declare or replace variable param_campaign_id string default null;

with

impressions_per_user as (
    select
        user_id,
        count(*) as impressions
    from marts.fct_impressions
    where
        event_date between param_start_date and param_end_date
        and (param_campaign_id is null or campaign_id = param_campaign_id)
    group by user_id
),

clicks_per_user as (
    select
        user_id,
        count(*) as clicks
    from marts.fct_clicks
    where
        event_date between param_start_date and param_end_date
        and (param_campaign_id is null or campaign_id = param_campaign_id)
    group by user_id
),

users as (
    select
        least(impressions_per_user.impressions, 10) as frequency,
        impressions_per_user.impressions,
        coalesce(clicks_per_user.clicks, 0) as clicks
    from impressions_per_user
    left join clicks_per_user on impressions_per_user.user_id = clicks_per_user.user_id
)

select
    case when frequency = 10 then '10+' else cast(frequency as string) end as impressions_per_user,
    count(*) as users,
    sum(impressions) as impressions,
    count_if(clicks > 0) as users_who_clicked,
    sum(clicks) as clicks,
    round(sum(clicks) / sum(impressions), 6) as ctr
from users
group by frequency
order by frequency
