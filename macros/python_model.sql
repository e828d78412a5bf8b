{#-
    python_model: the dbt side of a Python model. The computation runs in arc_halo.python_models.<name>
    (dbt-postgres runs SQL only), between `arc-halo build`'s two dbt phases; this materialization then
    checks that the output exists with the contract's columns, records the docs, and lets dbt run the
    model's tests and everything downstream in the usual order.
-#}
{% materialization python_model, adapter='postgres' %}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- if existing is none -%}
        {{ exceptions.raise_compiler_error(
            "Python model " ~ this ~ " has not been computed: build with `arc-halo build` (it runs "
            ~ "arc_halo.python_models." ~ model.name ~ " between the dbt phases), not plain `dbt build`") }}
    {%- endif -%}
    {%- set actual = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
    {%- set declared = model.columns.keys() | list -%}
    {%- if actual != declared -%}
        {{ exceptions.raise_compiler_error("Python model " ~ this ~ " has columns " ~ actual ~ " but its contract declares " ~ declared) }}
    {%- endif -%}
    {%- call statement('main') -%}select 1{%- endcall -%}
    {% do persist_docs(target_relation, model) %}
    {% do apply_grants(target_relation, config.get('grants'), should_revoke=true) %}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
