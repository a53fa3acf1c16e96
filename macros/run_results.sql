{#- on-run-end: one row per node of the invocation in ops.dbt_run_results (docs/monitoring.md). dbt-spark reports no
    row counts, so rows_affected is null there; failures is a test's failing-row count. -#}
{% macro store_run_results(results) %}
{%- if execute and results -%}
    {%- do run_query("create schema if not exists ops") -%}
    {%- do run_query(adx.run_results_table_ddl()) -%}
    {%- set rows = [] -%}
    {%- for result in results -%}
        {%- set node = result.node -%}
        {%- set response = result.adapter_response or {} -%}
        {%- do rows.append("(" ~ [
            adx.sql_string(invocation_id),
            adx.sql_string(flags.WHICH),
            adx.sql_string(node.unique_id),
            adx.sql_string(node.resource_type),
            adx.sql_string(node.name),
            adx.sql_string(result.status),
            adx.sql_number(response.get("rows_affected")),
            adx.sql_number(result.failures),
            adx.sql_number(result.execution_time),
            adx.sql_string(result.message),
            adx.sql_string(node.relation_name if node.resource_type == "test" and node.config.store_failures else none),
            adx.sql_string(node.tags | join(",")),
            "timestamp'" ~ run_started_at.strftime("%Y-%m-%d %H:%M:%S") ~ "'",
            "date'" ~ run_started_at.strftime("%Y-%m-%d") ~ "'",
        ] | join(", ") ~ ")") -%}
    {%- endfor -%}
    {%- do run_query("insert into ops.dbt_run_results values " ~ rows | join(",\n")) -%}
{%- endif -%}
{% endmacro %}

{% macro run_results_table_ddl() %}
create table if not exists ops.dbt_run_results (
    invocation_id string,
    command string,
    unique_id string,
    resource_type string,
    name string,
    status string,
    rows_affected bigint,
    failures bigint,
    execution_seconds double,
    message string,
    stored_failures_relation string,
    tags string,
    run_started_at timestamp,
    run_date date
)
using parquet
partitioned by (run_date)
{% endmacro %}

{#- A Spark SQL string literal (or null) for any value. -#}
{% macro sql_string(value) %}
{%- if value is not defined or value is none -%}null
{%- else -%}'{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") | replace("\n", " ") }}'
{%- endif -%}
{% endmacro %}

{% macro sql_number(value) %}
{%- if value is not defined or value is none or value == "" -%}null{%- else -%}{{ value }}{%- endif -%}
{% endmacro %}
