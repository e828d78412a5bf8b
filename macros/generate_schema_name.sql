{#- Schemas are named as configured (public, analytics, reference), not prefixed with the target
    schema: each environment is its own database (a Neon branch, a scratch database), so names need
    no prefix, and analysts find the seed's views on the default search path. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
