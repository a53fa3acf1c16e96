{#- Stable schema names analysts can rely on: a folder's +schema is the schema, with no target prefix.
    The elementary package's tables (`adx elementary enable`) go to their own schema, `elementary`; set here rather
    than in dbt_project.yml, where a config path for an absent package warns on every run. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if node.package_name == "elementary" -%}
        elementary
    {%- elif custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
