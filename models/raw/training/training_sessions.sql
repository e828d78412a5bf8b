{#- GIN (jsonb_path_ops) answers containment searches such as hyperparameters @> '{"optimizer": "adamw"}'. -#}
{{ config(table_indexes=[
    {'columns': ['hyperparameters jsonb_path_ops'], 'using': 'gin', 'name': 'training_sessions_hyperparameters_idx'},
]) }}
{{ contract_select() }}
