{{ config(table_indexes=[{'columns': ['inference_session_id', 'metric_name', 'recorded_at']}]) }}
{{ contract_select() }}
