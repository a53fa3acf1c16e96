{#- Seeds on Spark: read the CSV file with Spark's own CSV reader instead of dbt-spark's default, which sends
    the rows as INSERT ... VALUES batches (the 20,000-row user_demographics seed took ~30 s that way, ~2 s this
    way). The file must be readable by the Spark driver: true for the embedded session and for a Thrift server
    on the same machine. -#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set csv_path = model.root_path ~ '/' ~ model.original_file_path -%}
    {%- set source_view = 'seed_source_' ~ model.name -%}

    {% call statement('seed_source_view') -%}
        create or replace temporary view {{ source_view }}
        using csv
        options (path '{{ csv_path }}', header 'true', mode 'FAILFAST', enforceSchema 'false')
    {%- endcall %}

    {% set sql %}
        insert into {{ this.render() }}
        select
            {%- for col_name in agate_table.column_names %}
            {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) %}
            cast(`{{ col_name }}` as {{ column_override.get(col_name, inferred_type) }})
            {%- if not loop.last %},{% endif %}
            {%- endfor %}
        from {{ source_view }}
    {% endset %}
    {% call statement('seed_load') -%}
        {{ sql }}
    {%- endcall %}
    {{ return(sql) }}
{% endmacro %}
