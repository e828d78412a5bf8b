{#-
    Roles (cluster-wide, created idempotently when var('manage_roles')):
      arc_halo_app      writes the operational tables; application logins are granted it
      arc_halo_analyst  reads the analytics schema only
    The owner is the login that runs dbt (on Neon, the project's owner role): it owns every object.
-#}
{% macro create_roles() -%}
    {%- if var('manage_roles') -%}
do $roles$
begin
    if not exists (select from pg_roles where rolname = 'arc_halo_app') then
        create role arc_halo_app nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'arc_halo_analyst') then
        create role arc_halo_analyst nologin;
    end if;
end
$roles$;
    {%- endif -%}
{%- endmacro %}


{% macro grant_schema_usage() -%}
    {%- if var('manage_roles') -%}
grant usage on schema {{ target.schema }} to arc_halo_app;
create schema if not exists analytics;
grant usage on schema analytics to arc_halo_analyst;
revoke all on schema analytics from arc_halo_app;
    {%- endif -%}
{%- endmacro %}
