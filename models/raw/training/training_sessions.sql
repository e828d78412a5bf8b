{#- GIN (jsonb_path_ops) answers containment searches such as hyperparameters @> '{"optimizer": "adamw"}'. -#}
{#- Deleting a run deletes its metric history (training_metrics has no per-row foreign key, for ingest speed). -#}
{{ config(
    table_indexes=[
        {'columns': ['hyperparameters jsonb_path_ops'], 'using': 'gin', 'name': 'training_sessions_hyperparameters_idx'},
    ],
    post_hook=[
        "create or replace trigger training_sessions_delete_metrics
         after delete on {{ this }} referencing old table as removed_sessions
         for each statement execute function {{ target.schema }}.training_sessions_delete_metrics()",
    ]
) }}
{{ contract_select() }}
