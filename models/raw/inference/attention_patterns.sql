{{ config(table_indexes=[{'columns': ['inference_session_id', 'layer_id', 'head_index']}]) }}
{{ contract_select() }}
