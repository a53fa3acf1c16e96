{#-
    Elementary on dbt-spark with parquet tables (docs/monitoring.md#elementary). Used only when the elementary
    package is installed (`adx elementary enable`); dbt_project.yml dispatches the `elementary` namespace here first.

    Elementary writes its Spark tables with MERGE and DELETE, which Spark runs only on Delta, Iceberg or Hudi tables.
    Neither Delta (4.2.0, built for Spark 4.1) nor Iceberg (spark-runtime 4.1, 1.11.0) loads on this project's Spark
    4.2: both fail with binary-incompatibility errors on the first CREATE TABLE. So the elementary schema stays
    parquet and these overrides replace the operations parquet cannot do, each keeping the tables free of
    duplicates:
-#}

{#- Every incremental model of the package selects an empty result (its rows come from on-run-end hooks, below);
    the model run only creates the table and adds new columns. Appending zero rows is what a merge of zero rows
    does, and `append` is valid on parquet. -#}
{% macro spark__get_default_incremental_strategy() %}
    {% do return("append") %}
{% endmacro %}


{#- Artifact tables (dbt_models, dbt_tests, ...) in "replace" upload mode: the package deletes every row, then
    inserts. The rows go to an intermediate table first, then replace the table's data in one INSERT OVERWRITE,
    so a failure leaves the old rows rather than an empty table. -#}
{% macro spark__replace_table_data(relation, rows) %}
    {% set intermediate = elementary.create_intermediate_relation(relation, rows, temporary=false) %}
    {% do elementary.run_query("insert overwrite table " ~ relation ~ " select * from " ~ intermediate) %}
    {% do adapter.drop_relation(intermediate) %}
{% endmacro %}


{#- Artifact tables in "diff" upload mode: delete the rows whose key changed, insert the new ones. Spark cannot
    overwrite a table while reading it, so the kept rows plus the new rows are staged in a table of their own and
    written back with one INSERT OVERWRITE. Rows with a null key are dropped, as the package's DELETE does. -#}
{% macro spark__get_delete_and_insert_queries(relation, insert_relation, delete_relation, delete_column_key) %}
    {% set staged = relation.incorporate(path={"identifier": relation.identifier ~ "__adx_rewrite"}) %}
    {% set kept %}
        select kept.* from {{ relation }} as kept
        {% if delete_relation %}
            left anti join {{ delete_relation }} as deleted
            on kept.{{ delete_column_key }} = deleted.{{ delete_column_key }}
            where kept.{{ delete_column_key }} is not null
        {% endif %}
    {% endset %}
    {% set staging_sql %}
        create table {{ staged }} using parquet as
        {{ kept }}
        {% if insert_relation %} union all select * from {{ insert_relation }} {% endif %}
    {% endset %}
    {% do return([
        "drop table if exists " ~ staged,
        staging_sql,
        "insert overwrite table " ~ relation ~ " select * from " ~ staged,
        "drop table " ~ staged,
    ]) %}
{% endmacro %}



{#- The package stages test metrics and schema snapshots in temporary views without a schema (its
    spark__edr_make_temp_relation), then drops them through a Relation that carries no type: dbt refuses to drop
    that ("its type is null") whenever the relation cache cannot fill the type in, which fails the on-run-end hook. -#}
{% macro spark__fully_drop_relation(relation) %}
    {% if relation.schema is none %}
        {% do elementary.run_query("drop view if exists " ~ relation.identifier) %}
    {% else %}
        {% do adapter.drop_relation(relation) %}
    {% endif %}
{% endmacro %}
