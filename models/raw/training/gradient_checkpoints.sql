{#- One configuration per model (layer_id NULL) and per layer; an expression index because
    UNIQUE NULLS NOT DISTINCT needs PostgreSQL 15 and Neon still offers 14. -#}
{{ config(table_indexes=[
    {'columns': ['model_id', "coalesce(layer_id, '00000000-0000-0000-0000-000000000000'::uuid)"],
        'unique': true, 'name': 'gradient_checkpoints_scope_key'},
]) }}
{{ contract_select() }}
