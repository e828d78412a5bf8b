{#- Post-hooks that attach the helper triggers (CREATE OR REPLACE TRIGGER: PostgreSQL 14+, as on Neon). -#}

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
