{{ config(table_indexes=[
    {'columns': ['reactor_id', 'started_at']},
    {'columns': ['contributing_model_ids'], 'using': 'gin'},
]) }}
{{ contract_select() }}
