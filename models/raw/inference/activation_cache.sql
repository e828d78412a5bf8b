{#- Partial index on expires_at: the purge reads expired rows in expiry order without scanning live ones. -#}
{{ config(
    column_storage={'activation_data': 'external'},
    table_indexes=[
        {'columns': ['inference_session_id', 'layer_id', 'position_start']},
        {'columns': ['expires_at'], 'where': 'expires_at is not null', 'name': 'activation_cache_expiry_idx'},
    ]
) }}
{{ contract_select() }}
