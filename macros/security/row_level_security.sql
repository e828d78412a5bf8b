{#-
    Row-level security, off by default (the seed: "if needed"); on with --vars '{row_level_security: true}'.
    Every operational table but the shared reference data (tensor_dtypes) carries tenant_id, and each
    sees only rows of the tenant in the transaction's setting (tenant_setting(), none when it is unset).
    Child rows carry their parent's tenant, enforced by composite foreign keys on (tenant_id, parent
    key), so the policy is one comparison on the row itself: no parent lookup per row, on reads or on
    bulk inserts. The owner (dbt's login) is not subject to the policies.
-#}

{% macro tenant_isolation_policy() -%}
    {#- Post-hook of every operational table; tables without tenant_id are reference data, read-only to the app. -#}
    {%- if 'tenant_id' not in model.columns -%}
        select 1
    {%- elif var('row_level_security') -%}
        {%- set rule = "tenant_id = " ~ current_tenant() -%}
alter table {{ this }} enable row level security;
drop policy if exists tenant_isolation on {{ this }};
create policy tenant_isolation on {{ this }} using ({{ rule }}) with check ({{ rule }})
    {%- else -%}
drop policy if exists tenant_isolation on {{ this }};
alter table {{ this }} disable row level security
    {%- endif -%}
{%- endmacro %}


{% macro invoker_view_security() -%}
    {#- Post-hook of the seed's views: with RLS on they run with the caller's rights, so they cannot be a
        way around the policies. security_invoker needs PostgreSQL 15+. -#}
    {%- if var('row_level_security') -%}
        {%- set version = run_query("select current_setting('server_version_num')::int").columns[0].values()[0] if execute else 150000 -%}
        {%- if version < 150000 -%}
            {{ exceptions.raise_compiler_error("row_level_security needs PostgreSQL 15+ (security_invoker views); this server is " ~ version) }}
        {%- endif -%}
alter view {{ this }} set (security_invoker = true)
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
