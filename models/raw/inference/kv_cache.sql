{#- One entry per (session, layer, head, position range); head_index NULL means all heads, so the
    key uses coalesce (UNIQUE NULLS NOT DISTINCT needs PostgreSQL 15; Neon still offers 14). The key ends
    with tenant_id, so a row of another tenant can never collide with (and so reveal) one's own. -#}
{{ config(
    pre_hook=["{{ drop_index_lacking('kv_cache_entry_key', 'tenant_id') }}"],
    column_storage={'key_data': 'external', 'value_data': 'external'},
    table_indexes=[
        {'columns': ['inference_session_id', 'layer_id', 'coalesce(head_index, -1)', 'position_start', 'tenant_id'],
            'unique': true, 'name': 'kv_cache_entry_key'},
        {'columns': ['expires_at'], 'where': 'expires_at is not null', 'name': 'kv_cache_expiry_idx'},
    ]
) }}
{{ contract_select() }}
