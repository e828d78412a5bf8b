{#- One configuration per model (layer_id NULL) and per layer; an expression index because
    UNIQUE NULLS NOT DISTINCT needs PostgreSQL 15 and Neon still offers 14. tenant_id ends the key so
    that another tenant's rows never collide with one's own (a collision would reveal them). -#}
{{ config(
    pre_hook=["{{ drop_index_lacking('gradient_checkpoints_scope_key', 'tenant_id') }}"],
    table_indexes=[
        {'columns': ['model_id', "coalesce(layer_id, '00000000-0000-0000-0000-000000000000'::uuid)", 'tenant_id'],
            'unique': true, 'name': 'gradient_checkpoints_scope_key'},
    ]
) }}
{{ contract_select() }}
