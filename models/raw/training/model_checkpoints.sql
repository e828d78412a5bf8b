{#- One best checkpoint per session; tenant_id ends the key so another tenant's rows never collide with
    (and so reveal) one's own. -#}
{{ config(
    pre_hook=["{{ drop_index_lacking('model_checkpoints_one_best_per_session', 'tenant_id') }}"],
    table_indexes=[
        {'columns': ['model_id', 'created_at desc'], 'name': 'model_checkpoints_model_created_idx'},
        {'columns': ['training_session_id', 'tenant_id'], 'unique': true, 'where': 'is_best',
            'name': 'model_checkpoints_one_best_per_session'},
    ]
) }}
{{ contract_select() }}
