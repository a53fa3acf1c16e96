{#- Data-observability tests (tag `anomaly`), documented in macros/_macros.yml and docs/monitoring.md. Each returns
    the failing rows with the relation it watched, so `adx status` can name what is wrong. Severity comes from var
    anomaly_severity (default warn): an anomaly alerts, it does not stop the marts being built. -#}

{#- Volume of the latest day per group (e.g. campaign) against the same group's previous baseline_days days (days
    the table has rows for; a group without rows on such a day counts 0 there). Flags |volume - mean| >
    sensitivity x spread, spread = max(population stddev, sqrt(mean), 1): the same band as the topic monitor's
    per-minute anomaly (ingestion/streaming/monitor.py), so a steady history does not flag counting noise. Groups
    with fewer than min_baseline_days baseline days or a mean below min_baseline_volume are not judged. -#}
{% test volume_anomaly(model, date_column, group_by=none, baseline_days=7, min_baseline_days=3, sensitivity=3,
                       min_baseline_volume=10) %}
with daily as (
    select
        cast({{ date_column }} as date) as day,
        {% if group_by %}coalesce(cast({{ group_by }} as string), '(null)'){% else %}'(all)'{% endif %} as group_value,
        count(*) as volume
    from {{ model }}
    where {{ date_column }} is not null
    group by 1, 2
),

latest as (
    select max(day) as latest_day from daily
),

baseline_days as (
    select distinct daily.day
    from daily
    cross join latest
    where daily.day < latest.latest_day and daily.day >= date_sub(latest.latest_day, {{ baseline_days }})
),

watched_groups as (
    select distinct daily.group_value
    from daily
    cross join latest
    where daily.day >= date_sub(latest.latest_day, {{ baseline_days }})
),

baseline as (
    select
        watched_groups.group_value,
        count(*) as baseline_days,
        avg(coalesce(daily.volume, 0)) as baseline_mean,
        stddev_pop(coalesce(daily.volume, 0)) as baseline_stddev
    from watched_groups
    cross join baseline_days
    left join daily
        on daily.group_value = watched_groups.group_value and daily.day = baseline_days.day
    group by watched_groups.group_value
),

scored as (
    select
        baseline.group_value,
        latest.latest_day as day,
        coalesce(daily.volume, 0) as volume,
        baseline.baseline_days,
        baseline.baseline_mean,
        greatest(baseline.baseline_stddev, sqrt(baseline.baseline_mean), 1.0) as spread
    from baseline
    cross join latest
    left join daily
        on daily.group_value = baseline.group_value and daily.day = latest.latest_day
)

select
    '{{ model }}' as monitored_relation,
    '{{ group_by or "" }}' as group_column,
    group_value,
    day,
    volume,
    round(baseline_mean, 2) as baseline_mean,
    round(spread, 2) as spread,
    round((volume - baseline_mean) / spread, 2) as deviation
from scored
where
    baseline_days >= {{ min_baseline_days }}
    and baseline_mean >= {{ min_baseline_volume }}
    and abs(volume - baseline_mean) > {{ sensitivity }} * spread
{% endtest %}

{#- The newest arrival date (`_ingest_date`) of any of the four raw data sources: the warehouse's "now" for
    freshness, which holds for a live feed, a backfill and synthetic data alike. When every source stops, nothing
    lags this reference: dbt source freshness (`_loaded_at` against the wall clock) catches that.

    On an incremental run (var run_date) the reference is the newest arrival on or after run_date, or run_date
    itself: a run for run_date is a statement that the warehouse is at least that new. That reads the run's own
    arrival partitions instead of every one. -#}
{% macro latest_arrival_date() %}
{%- set from_run_date = "_ingest_date >= date'" ~ var('run_date') ~ "'" if var('run_date') else "true" -%}
(
    select {{ "greatest(date'" ~ var('run_date') ~ "', max(latest_ingest_date))" if var('run_date') else "max(latest_ingest_date)" }}
    from (
        {%- for source_name, table_name in [('adserver', 'impressions'), ('tracking', 'clicks'), ('tracking', 'conversions'), ('rtb', 'bid_requests')] %}
        {{ "union all" if not loop.first }}
        select max(_ingest_date) as latest_ingest_date from {{ source(source_name, table_name) }} where {{ from_run_date }}
        {%- endfor %}
    ) as per_source
)
{% endmacro %}

{#- Freshness: the model's newest date in column_name is at most max_lag_days behind the warehouse's newest
    arrival date (latest_arrival_date). An empty model fails too. On an incremental run only the dates from
    max_lag_days before run_date on are read: the reference is never earlier than run_date, so an older newest date
    fails either way (reported as latest_date null). -#}
{% test arrival_lag(model, column_name, max_lag_days=1) %}
with freshness as (
    select
        cast(max({{ column_name }}) as date) as latest_date,
        {{ adx.latest_arrival_date() }} as reference_date
    from {{ model }}
    {%- if var('run_date') %}
    where {{ column_name }} >= date_sub(date'{{ var('run_date') }}', {{ max_lag_days }})
    {%- endif %}
)

select
    '{{ model }}' as monitored_relation,
    '{{ column_name }}' as date_column,
    latest_date,
    reference_date,
    datediff(reference_date, latest_date) as lag_days
from freshness
where reference_date is not null
    and (latest_date is null or datediff(reference_date, latest_date) > {{ max_lag_days }})
{% endtest %}

{#- Schema change: the relation's top-level columns against the expected list (names, case-insensitive, any
    order). One row per column added or removed. -#}
{% test columns_match(model, expected_columns) %}
{%- set expected = expected_columns | map('lower') | list -%}
{%- set actual = [] -%}
{%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(model) -%}
        {%- if column.name | lower not in actual -%}{%- do actual.append(column.name | lower) -%}{%- endif -%}
    {%- endfor -%}
{%- endif -%}
{%- set changes = [] -%}
{%- for name in actual if name not in expected -%}{%- do changes.append(("added", name)) -%}{%- endfor -%}
{%- for name in expected if execute and name not in actual -%}{%- do changes.append(("removed", name)) -%}{%- endfor -%}
{%- if changes %}
select * from values
    {%- for change, name in changes %}
    ('{{ model }}', '{{ change }}', '{{ name }}'){{ "," if not loop.last }}
    {%- endfor %}
    as schema_changes(monitored_relation, change, column_name)
{%- else %}
select
    cast(null as string) as monitored_relation, cast(null as string) as change, cast(null as string) as column_name
where false
{%- endif %}
{% endtest %}
