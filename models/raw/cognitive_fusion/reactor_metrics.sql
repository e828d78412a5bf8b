{{ config(table_indexes=[{'columns': ['reactor_id', 'metric_name', 'recorded_at']}]) }}
{{ contract_select() }}
