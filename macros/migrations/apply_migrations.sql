{#- on-run-start, before every other hook: pending migrations/ first, so plain `dbt build` on any target
    (local, ci, a Neon PR branch, production) evolves the models from the schema the migrations leave.
    The runner is arc_halo.migrations, called through the project's adapter. -#}
{% macro apply_migrations() -%}
    {%- if execute -%}
        {%- do log("arc-halo: " ~ adapter.apply_migrations(), info=true) -%}
    {%- endif -%}
    select 1
{%- endmacro %}
