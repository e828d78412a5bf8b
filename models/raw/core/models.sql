{{ config(table_indexes=[
    {'columns': ['config jsonb_path_ops'], 'using': 'gin', 'name': 'models_config_idx'},
]) }}
{{ contract_select() }}
