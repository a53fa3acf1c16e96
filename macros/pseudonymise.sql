{#- The pseudonym of a user id (a string expression): HMAC-SHA-256 under the warehouse's key, as 64 lower-case hex
    digits; NULL stays NULL. ingestion/pseudonyms.py explains the construction and where the padded keys come from:
    the Spark session's configuration, substituted into the statement by Spark (${...}) when it parses it, so that
    no key material is in the compiled SQL. Use it only in models materialized as tables: a view would store the
    substituted text, keys included, in the metastore. A session without the keys fails instead of hashing with
    none. -#}
{% macro pseudonymise(user_id) -%}
sha2(concat({{ adx.pseudonym_pad('outer_pad') }}, unhex(sha2(concat({{ adx.pseudonym_pad('inner_pad') }}, encode({{ user_id }}, 'UTF-8')), 256))), 256)
{%- endmacro %}

{% macro pseudonym_pad(name) -%}
    {%- if model.config.materialized not in ('table', 'incremental') -%}
        {{ exceptions.raise_compiler_error("pseudonymise() in " ~ model.name ~ ", a " ~ model.config.materialized ~ ": a view would keep the key in its definition") }}
    {%- endif -%}
    case when octet_length(unhex('${adx.pseudonym.{{ name }}}')) = 64 then unhex('${adx.pseudonym.{{ name }}}')
        else raise_error('no pseudonymisation key in this Spark session (adx.pseudonym.{{ name }}): run dbt through adx, which sets it')
    end
{%- endmacro %}
