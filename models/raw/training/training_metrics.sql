{#-
    Time-series history, range-partitioned by month on recorded_at. The default partition catches
    rows outside the created months; create_training_metrics_partitions() moves them when it creates
    their month. A statement-level trigger checks the sessions and keeps training_metrics_latest
    current for every writer. No primary key, no per-row foreign key and no btree, on purpose: each
    costs ingest more than the rest of a row (benchmarks/bench_metric_ingest.py). History reads go
    through the BRIN bloom index and partition pruning; progress reads through training_metrics_latest.
    The drop statements converge databases built with the earlier foreign key, btree and trigger; a
    database built before tenant_id was on this table gets it from each row's session (backfill_from).
-#}
{{ config(
    partition_by={'type': 'range', 'column': 'recorded_at'},
    backfill_from=[{'to': 'training_sessions', 'columns': ['tenant_id', 'training_session_id'],
                    'to_columns': ['tenant_id', 'training_session_id']}],
    table_indexes=[{'columns': ['training_session_id uuid_bloom_ops', 'metric_name text_bloom_ops'], 'using': 'brin',
                    'name': 'training_metrics_session_metric_brin'}],
    post_hook=[
        "create table if not exists {{ this.schema }}.training_metrics_default partition of {{ this }} default",
        "select {{ target.schema }}.create_training_metrics_partitions({{ var('metric_partition_months_back') }}, {{ var('metric_partition_months_ahead') }})",
        "alter table {{ this }} drop constraint if exists training_metrics_training_session_id_fkey",
        "drop index if exists {{ this.schema }}.training_metrics_training_session_id_metric_name_step_idx",
        "drop trigger if exists training_metrics_track_latest on {{ this }}",
        "drop function if exists {{ target.schema }}.training_metrics_track_latest()",
        "create or replace trigger training_metrics_after_insert
         after insert on {{ this }} referencing new table as new_metrics
         for each statement execute function {{ target.schema }}.training_metrics_after_insert()",
    ]
) }}
-- depends_on: {{ ref('training_sessions') }}  (checked by the trigger and the row-level security policy)
{{ contract_select() }}
