{{ config(table_indexes=[
    {'columns': ['layer_id']},
    {'columns': ['tensor_id']},
]) }}
{{ contract_select() }}
