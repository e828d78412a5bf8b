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
