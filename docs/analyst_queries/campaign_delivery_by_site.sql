-- Where one campaign's impressions ran over a date range: impressions, clicked impressions, spend, CTR and
-- CPM per site and device type, highest spend first. A drill-down from the event-level fact table.
--
-- Parameters (edit the defaults, or `set var <name> = <value>;` in your session and rerun the select):
--   param_start_date, param_end_date: first and last UTC event_date, both included.
--   param_campaign_id: the campaign, e.g. 'cmp_001'.
--
-- Reads marts.fct_impressions, partitioned by (event_date, campaign_id): filtering on both reads the files of
-- one campaign's days only (EXPLAIN shows them under PartitionFilters). clicked_impressions counts impressions
-- with is_clicked (some click was matched to them), so ctr here is clicked impressions / impressions.

declare or replace variable param_start_date date default date'2026-11-01';
declare or replace variable param_end_date date default date'2026-11-07';
declare or replace variable param_campaign_id string default 'cmp_006';

select
    site_domain,
    device_type,
    count(*) as impressions,
    count_if(is_clicked) as clicked_impressions,
    sum(cost_usd) as spend_usd,
    round(count_if(is_clicked) / count(*), 6) as ctr,
    round(1000 * sum(cost_usd) / count(*), 6) as cpm_usd
from marts.fct_impressions
where
    event_date between param_start_date and param_end_date
    and campaign_id = param_campaign_id
group by site_domain, device_type
order by spend_usd desc, site_domain, device_type
