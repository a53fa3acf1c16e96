-- RTB win rate by exchange over a date range: bid requests received, bids placed, auctions won and impressions
-- served, with bid rate (bids / requests), win rate (wins / bids), serve rate (served / wins) and the average
-- clearing price of the wins, highest win rate first.
--
-- Parameters (edit the defaults, or `set var <name> = <value>;` in your session and rerun the select):
--   param_start_date, param_end_date: first and last UTC date of the bid requests, both included.
--   param_campaign_id: one campaign our bidder considered, e.g. 'cmp_001'; null for every campaign.
--
-- Reads marts.agg_rtb_daily (one row per day, exchange and campaign, partitioned by event_date). The average
-- clearing price re-weights the daily averages by their wins (each daily average is rounded to 6 decimals).

declare or replace variable param_start_date date default date'2026-11-01';
declare or replace variable param_end_date date default date'2026-11-07';
declare or replace variable param_campaign_id string default null;

with

exchange_days as (
    select *
    from marts.agg_rtb_daily
    where
        event_date between param_start_date and param_end_date
        and (param_campaign_id is null or campaign_id = param_campaign_id)
),

exchanges as (
    select
        exchange,
        sum(bid_requests) as bid_requests,
        sum(bids) as bids,
        sum(wins) as wins,
        sum(impressions_served) as impressions_served,
        sum(avg_clearing_price_cpm * wins) as clearing_price_cpm_sum
    from exchange_days
    group by exchange
)

select
    exchange,
    bid_requests,
    bids,
    wins,
    impressions_served,
    round(bids / nullif(bid_requests, 0), 6) as bid_rate,
    round(wins / nullif(bids, 0), 6) as win_rate,
    round(impressions_served / nullif(wins, 0), 6) as serve_rate,
    round(clearing_price_cpm_sum / nullif(wins, 0), 6) as avg_clearing_price_cpm
from exchanges
order by win_rate desc nulls last, exchange
