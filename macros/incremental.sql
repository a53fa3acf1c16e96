{#- What an incremental run (var run_date set, model already built) reads and rewrites.

    The contract (ingestion/orchestration/intervals.py): a record that arrives on date A has an event date in
    [A - lookback_days, A]. A run for arrival dates [arrival_start_date, run_date] therefore re-validates those
    arrival partitions of the staging base tables and rebuilds the event dates [run_date - lookback_days, run_date]
    of the intermediate tables and marts. Without run_date, every date. -#}

{#- Date predicate of a model's own rows: dates up to run_date, and on incremental runs only the last
    lookback_days (+ extra_days) days before it. With arrival_column (reads of staging, whose base tables are
    partitioned by arrival date), the same lower bound on the arrival date too: an event never arrives before its
    date, so this prunes the arrival partitions without losing a row. -#}
{% macro incremental_date_window(date_column, extra_days=0, arrival_column=none) -%}
    {%- set run_date = var('run_date') -%}
    {%- if run_date -%}
        {{ date_column }} <= date'{{ run_date }}'
        {%- if is_incremental() %}
        {%- set first_date = "date_sub(date'" ~ run_date ~ "', " ~ (var('lookback_days') | int + extra_days | int) ~ ")" %}
        and {{ date_column }} >= {{ first_date }}
        {%- if arrival_column %}
        and {{ arrival_column }} >= {{ first_date }}
        {%- endif -%}
        {%- endif -%}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Whole days covering an attribution window given in hours (24 h -> 1, 168 h -> 7, 25 h -> 2). -#}
{% macro window_days(hours) -%}
    {{- (hours / 24) | round(0, 'ceil') | int -}}
{%- endmacro %}

{#- The first arrival date an incremental run re-validates: var arrival_start_date (set by the orchestration to
    the first arrival date it landed), else run_date - lookback_days. -#}
{% macro arrival_start() -%}
    {%- if var('arrival_start_date', none) -%}
        date'{{ var('arrival_start_date') }}'
    {%- else -%}
        date_sub(date'{{ var('run_date') }}', {{ var('lookback_days') | int }})
    {%- endif -%}
{%- endmacro %}

{#- Predicate on a raw table's arrival date: on incremental runs the arrival partitions from arrival_start() on
    (later ones too, so that rerunning an older interval also re-checks the duplicates that arrived after it). -#}
{% macro arrival_window(arrival_column='_ingest_date') -%}
    {%- if is_incremental() and var('run_date') -%}
        {{ arrival_column }} >= {{ adx.arrival_start() }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- The rows of `numbered` (each with copy_number, its rank among the copies of its id in this run) with
    is_later_copy: a copy after the first in this run, or a copy of an id the base table kept (rejection_reason
    null) from arrivals before this run's. Within the contract every copy of an event arrives within lookback_days
    of its first copy, so only those arrival partitions of the table are read; full builds number every copy
    themselves. -#}
{% macro flag_later_copies(numbered, id_column) -%}
    select
        {{ numbered }}.*,
        {{ numbered }}.copy_number > 1 or earlier_kept.{{ id_column }} is not null as is_later_copy
    from {{ numbered }}
    left join (
        {%- if is_incremental() and var('run_date') %}
        select distinct {{ id_column }}
        from {{ this }}
        where
            rejection_reason is null
            and _ingest_date < {{ adx.arrival_start() }}
            and _ingest_date >= date_sub({{ adx.arrival_start() }}, {{ var('lookback_days') | int }})
        {%- else %}
        select {{ id_column }} from values (cast(null as string)) as none_yet ({{ id_column }}) where false
        {%- endif %}
    ) as earlier_kept on {{ numbered }}.{{ id_column }} = earlier_kept.{{ id_column }}
{%- endmacro %}

{#- Data tests on an incremental run check the rows the run rewrote, so that their cost does not grow with the
    history: models carry meta test_window_column (dbt_project.yml), the date column tests filter on. A full build
    (no run_date) tests every row. -#}
{% macro test_window(window_column) -%}
    {%- if not var('run_date') -%}
        true
    {%- elif window_column == '_ingest_date' -%}
        _ingest_date >= {{ adx.arrival_start() }}
    {%- else -%}
        {{ window_column }} >= date_sub(date'{{ var('run_date') }}', {{ var('lookback_days') | int }})
    {%- endif -%}
{%- endmacro %}

{#- The column a relation's tests window on: meta test_window_column of the model or source it is (dbt_project.yml);
    none if it has none. -#}
{% macro window_column_of(relation) -%}
    {%- for node in graph.nodes.values() | list + graph.sources.values() | list
        if node.resource_type in ('model', 'source')
        and node.schema == relation.schema
        and (node.alias if node.resource_type == 'model' else node.identifier) == relation.identifier
        and node.config.meta.get('test_window_column') -%}
        {%- do return(node.config.meta['test_window_column']) -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}

{#- The test windows of a relation: that of its window column, on incremental runs only and unless the test has meta
    whole_history (baselines, freshness). -#}
{% macro test_windows(relation) -%}
    {%- set window_column = adx.window_column_of(relation) if execute and var('run_date') else none -%}
    {%- if window_column and not config.get('meta', {}).get('whole_history') -%}
        {%- do return([adx.test_window(window_column)]) -%}
    {%- endif -%}
    {%- do return([]) -%}
{%- endmacro %}

{#- dbt's `where` subquery of a generic test (dispatched from dbt's get_where_subquery): the test's own `where` and
    the test windows of the relation. -#}
{% macro spark__get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- set windows = adx.test_windows(relation) -%}
    {#- A lone "where (x)" would parse as a table alias `where` with a column list: parenthesise only before "and". -#}
    {%- do return(adx.filtered(relation, (['(' ~ where ~ ')'] if where and windows else [where] if where else []) + windows)) -%}
{%- endmacro %}

{#- A further relation a test compares with its model (row_count_reconciles' source and other side), in its own test
    window, so that every side of the comparison covers the same arrivals. -#}
{% macro in_test_window(relation) -%}
    {%- do return(adx.filtered(relation, adx.test_windows(relation))) -%}
{%- endmacro %}

{#- The parent side of a relationships test on an incremental run. With meta parent_reaches_back_hours_var (the var
    holding how many hours before its child a parent row can be: an attribution window), the parent's rows from that
    long before the first date of the child's event-date window on, by the parent's own window column (an event
    never arrives before its date, so the bound holds for an arrival date too). Without it, the whole parent. -#}
{% macro parent_in_test_window(relation) -%}
    {%- set window_column = adx.window_column_of(relation) if execute and var('run_date') else none -%}
    {%- set meta = config.get('meta', {}) if window_column else {} -%}
    {%- set reaches_back_hours_var = meta.get('parent_reaches_back_hours_var') -%}
    {%- if reaches_back_hours_var and not meta.get('whole_history') -%}
        {%- set days_back = var('lookback_days') | int + adx.window_days(var(reaches_back_hours_var)) | int -%}
        {%- do return(adx.filtered(relation, [window_column ~ " >= date_sub(date'" ~ var('run_date') ~ "', " ~ days_back ~ ")"])) -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- dbt's relationships test (dispatched from dbt's test_relationships). The child side is already in its test window
    (spark__get_where_subquery); the parent side is windowed too where the test says how far back a parent can be
    (parent_in_test_window), so that the test's cost does not grow with the parent's history. -#}
{% macro spark__test_relationships(model, column_name, to, field) %}
with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
),

parent as (
    select {{ field }} as to_field
    from {{ adx.parent_in_test_window(to) }}
)

select from_field
from child
left join parent on child.from_field = parent.to_field
where parent.to_field is null
{% endmacro %}

{% macro filtered(relation, predicates) -%}
    {%- if predicates -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ predicates | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
