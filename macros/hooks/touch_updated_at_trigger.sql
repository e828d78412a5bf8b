{#- Project hook, not part of the adapter's materialization: the raw models' post-hook (dbt_project.yml)
    attaching this project's touch_updated_at() helper (macros/schema_helpers).
    CREATE OR REPLACE TRIGGER: PostgreSQL 14+, as on Neon. -#}

{% macro touch_updated_at_trigger() -%}
    {%- if 'updated_at' in model.columns -%}
create or replace trigger {{ this.identifier }}_touch_updated_at
before update on {{ this }}
for each row execute function {{ target.schema }}.touch_updated_at()
    {%- endif -%}
{%- endmacro %}


{% macro tenant_reference_triggers() -%}
    {#- One check_tenant_references trigger per column whose contract says `meta: {references: table.column}`
        (ids no foreign key can cover: uuid[], ids inside jsonb); `meta: {references_checked_on: [update]}`
        where inserts are checked per statement elsewhere. -#}
    {%- set statements = [] -%}
    {%- for column in model.columns.values() if (column.meta or {}).get('references') -%}
        {%- set referenced = column.meta.references.split('.') -%}
        {%- set events = column.meta.get('references_checked_on', ['insert', 'update']) -%}
        {%- set update_of = 'update of ' ~ column.name ~ ', tenant_id' -%}
        {%- do statements.append('create or replace trigger ' ~ this.identifier ~ '_' ~ column.name ~ '_tenant_reference'
            ~ ' before ' ~ (events | join(' or ')).replace('update', update_of) ~ ' on ' ~ this
            ~ ' for each row execute function ' ~ target.schema ~ '.check_tenant_references('
            ~ "'" ~ column.name ~ "', '" ~ referenced[0] ~ "', '" ~ referenced[1] ~ "')") -%}
    {%- endfor -%}
    {{ statements | join(';\n') if statements else 'select 1' }}
{%- endmacro %}


{% macro register_existing_external_stores() -%}
    {#- Post-hook of tensor_metadata: a database whose external tensors predate external_stores keeps reading
        them. The stores they were written to (the root before `/<2 hex>/<32 hex>.tensor`, the shape the
        library's stores write) are registered; any other URI stays unreadable. -#}
    {%- set object_name = "'/[0-9a-f]{2}/[0-9a-f]{32}[.]tensor$'" -%}
insert into {{ ref('external_stores') }} (uri_prefix)
select distinct root from (
    select regexp_replace(external_uri, {{ object_name }}, '') as root from {{ this }}
    where external_uri ~ {{ object_name }}
) as roots
where root ~ '^(file:///|[a-z][a-z0-9+.-]*://[^/?#@]+)[^?#@]*$' and root !~ '(/[.][.]?(/|$))|//.*//|/$|%'
on conflict (uri_prefix) do nothing
{%- endmacro %}
