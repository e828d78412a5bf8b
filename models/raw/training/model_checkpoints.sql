{{ config(table_indexes=[
    {'columns': ['model_id', 'created_at desc']
        , 'name': 'model_checkpoints_model_created_idx'},
    {'columns': ['training_session_id'], 'unique': true, 'where': 'is_best',
        'name': 'model_checkpoints_one_best_per_session'},
]) }}
{{ contract_select() }}
