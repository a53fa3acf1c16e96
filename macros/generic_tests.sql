{#- Generic tests the project would otherwise take from dbt_utils (the dbt hub is unreachable here).
    Documented in macros/_macros.yml. Each returns the failing rows. -#}

{% test expression_is_true(model, expression, where=none) %}
select *
from {{ model }}
where not ({{ expression }})
{%- if where %} and ({{ where }}){% endif %}
{% endtest %}

{#- A key column: unique and never NULL, checked in one aggregation instead of dbt's two scans (unique, not_null).
    Fails on each key held by more than one row and, if any row has no key, on the NULL key. -#}
{% test primary_key(model, column_name) %}
select
    {{ column_name }},
    count(*) as occurrences
from {{ model }}
group by {{ column_name }}
having count(*) > 1 or {{ column_name }} is null
{% endtest %}

{% test unique_combination_of_columns(model, combination_of_columns) %}
select
    {{ combination_of_columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}

{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
select *
from {{ model }}
where
    {{ column_name }} is not null
    and (
        false
        {%- if min_value is not none %}
        or {{ column_name }} {{ '<' if inclusive else '<=' }} {{ min_value }}
        {%- endif %}
        {%- if max_value is not none %}
        or {{ column_name }} {{ '>' if inclusive else '>=' }} {{ max_value }}
        {%- endif %}
    )
{% endtest %}

{#- Every row of the model reconciles with its source: count(source rows) = count(model rows) + count(other
    model rows). Used for raw = staged + rejected. On incremental runs each side in its test window. -#}
{% test row_count_reconciles(model, source_relation, plus_relation) %}
with counts as (
    select
        (select count(*) from {{ adx.in_test_window(source_relation) }}) as source_rows,
        (select count(*) from {{ model }}) as model_rows,
        (select count(*) from {{ adx.in_test_window(plus_relation) }}) as plus_rows
)
select *
from counts
where source_rows != model_rows + plus_rows
{% endtest %}
