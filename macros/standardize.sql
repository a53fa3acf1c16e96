{#- Parsing and standardisation shared by the staging models (docs/data_contract.md#standardisation). -#}

{% macro parse_utc_timestamp(column) -%}
    {{ return(adapter.dispatch('parse_utc_timestamp', 'adx')(column)) }}
{%- endmacro %}

{% macro default__parse_utc_timestamp(column) -%}
    cast({{ column }} as timestamp)
{%- endmacro %}

{#- ISO 8601 with or without offset; strings without an offset are UTC (the session time zone). NULL if invalid. -#}
{% macro spark__parse_utc_timestamp(column) -%}
    try_to_timestamp(nullif(trim({{ column }}), ''))
{%- endmacro %}

{% macro standardize_device_type(column) -%}
    case lower(trim({{ column }}))
        when 'mobile' then 'mobile'
        when 'phone' then 'mobile'
        when 'smartphone' then 'mobile'
        when 'desktop' then 'desktop'
        when 'pc' then 'desktop'
        when 'tablet' then 'tablet'
        when 'ipad' then 'tablet'
        when 'ctv' then 'ctv'
        when 'tv' then 'ctv'
        when 'connected_tv' then 'ctv'
        else 'unknown'
    end
{%- endmacro %}

{#- OpenRTB device.devicetype codes (AdCOM list: Device Types). -#}
{% macro openrtb_device_type(column) -%}
    case {{ column }}
        when 1 then 'mobile'
        when 4 then 'mobile'
        when 2 then 'desktop'
        when 5 then 'tablet'
        when 3 then 'ctv'
        when 7 then 'ctv'
        else 'unknown'
    end
{%- endmacro %}

{% macro standardize_country_code(column) -%}
    nullif(upper(trim({{ column }})), '')
{%- endmacro %}

{#- Exact decimal ratio, rounded half-up to 6 decimals once; NULL when the denominator is 0 or NULL.
    Operands cast to decimal(38,18) make Spark's division itself round the exact quotient to 6 decimals
    (precision 38 leaves it no more scale), so there is no double rounding. Pass unrounded sums. -#}
{% macro safe_ratio(numerator, denominator) -%}
    case
        when coalesce({{ denominator }}, 0) = 0 then null
        else cast({{ numerator }} as decimal(38, 18)) / cast({{ denominator }} as decimal(38, 18))
    end
{%- endmacro %}
