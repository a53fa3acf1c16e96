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

{#- Exact decimal ratio, half-up to 6 decimals; NULL when the denominator is 0 or NULL.
    decimal(24,6) operands keep Spark's division at 14+ decimals, so the final rounding is the only one that matters. -#}
{% macro safe_ratio(numerator, denominator) -%}
    case
        when coalesce({{ denominator }}, 0) = 0 then null
        else round(cast({{ numerator }} as decimal(24, 6)) / cast({{ denominator }} as decimal(24, 6)), 6)
    end
{%- endmacro %}

{#- Marts rebuild the dates [run_date - lookback_days, run_date] on incremental runs; everything up to run_date
    otherwise. No run_date: every date. -#}
{% macro incremental_date_window(date_column) -%}
    {%- set run_date = var('run_date') -%}
    {%- if run_date -%}
        {{ date_column }} <= date'{{ run_date }}'
        {%- if is_incremental() %}
        and {{ date_column }} >= date_sub(date'{{ run_date }}', {{ var('lookback_days') | int }})
        {%- endif -%}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
