{#- The content lookup is keyed by tenant first, so a lookup (and its EXPLAIN ANALYZE) never touches
    another tenant's rows: that would reveal which weights another tenant stores. -#}
{{ config(
    pre_hook=["{{ drop_index_lacking('tensor_metadata_content_sha256_idx', 'tenant_id') }}"],
    table_indexes=[
        {'columns': ['tenant_id', 'content_sha256'], 'name': 'tensor_metadata_content_sha256_idx'},
        {'columns': ['tenant_id', 'tensor_name']},
        {'columns': ['pending_upload_id'], 'where': 'pending_upload_id is not null', 'name': 'tensor_metadata_pending_upload_idx'},
    ],
    post_hook=[
        "create or replace trigger tensor_metadata_byte_size_check
         before insert or update of byte_size, element_count, dtype on {{ this }}
         for each row execute function {{ target.schema }}.tensor_metadata_validate()",
        "create or replace trigger tensor_metadata_external_uri_check
         before insert or update of external_uri on {{ this }}
         for each row execute function {{ target.schema }}.tensor_metadata_external_uri_check()",
        "{{ register_existing_external_stores() }}",
    ]
) }}
-- depends_on: {{ ref('external_stores') }}
{{ contract_select() }}
