{#-
    Time-series history, range-partitioned by month on recorded_at. The default partition catches
    rows outside the created months; create_training_metrics_partitions() moves them when it creates
    their month. A statement-level trigger keeps training_metrics_latest current for every writer.
    No primary key on purpose: history may repeat a step (a resumed run), and a wide key costs ingest.
-#}
{{ config(
    partition_by={'type': 'range', 'column': 'recorded_at'},
    table_indexes=[{'columns': ['training_session_id', 'metric_name', 'step']}],
    post_hook=[
        "create table if not exists {{ this.schema }}.training_metrics_default partition of {{ this }} default",
        "select {{ target.schema }}.create_training_metrics_partitions({{ var('metric_partition_months_back') }}, {{ var('metric_partition_months_ahead') }})",
        "create or replace trigger training_metrics_track_latest
         after insert on {{ this }} referencing new table as new_metrics
         for each statement execute function {{ target.schema }}.training_metrics_track_latest()",
    ]
) }}
{{ contract_select() }}
