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

{#- The test windows of a relation: that of the model or source it is (meta test_window_column, dbt_project.yml), on
    incremental runs only and unless the test has meta whole_history (baselines, freshness). -#}
{% macro test_windows(relation) -%}
    {%- set windows = [] -%}
    {%- if execute and var('run_date') and not config.get('meta', {}).get('whole_history') -%}
        {%- for node in graph.nodes.values() | list + graph.sources.values() | list
            if node.resource_type in ('model', 'source')
            and node.schema == relation.schema
            and (node.alias if node.resource_type == 'model' else node.identifier) == relation.identifier
            and node.config.meta.get('test_window_column') -%}
            {%- do windows.append(adx.test_window(node.config.meta['test_window_column'])) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- do return(windows) -%}
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

{% macro filtered(relation, predicates) -%}
    {%- if predicates -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ predicates | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
