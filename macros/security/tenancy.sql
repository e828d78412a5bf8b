{#-
    The tenant a transaction acts as, in SQL: the macros' one way to name the setting the policies read
    (the library's arc_halo.tenancy is the one place in Python). An application sets it per transaction
    (set_config(..., true)), never per session.
-#}

{#- Its name is the project variable tenant_setting (dbt_project.yml), which the YAML defaults name too. -#}
{% macro tenant_setting() -%}
    {{ var('tenant_setting') }}
{%- endmacro %}

{#- The caller's tenant, NULL when none is set: what the row-level security policies compare with. -#}
{% macro current_tenant() -%}
    current_setting('{{ tenant_setting() }}', true)
{%- endmacro %}

{#- The tenant a new row gets when it names none: the caller's, 'default' without one (every table's
    tenant_id default, and the embedding loads' check). -#}
{% macro current_tenant_or_default() -%}
    coalesce(nullif({{ current_tenant() }}, ''), 'default')
{%- endmacro %}
