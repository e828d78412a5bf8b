{{ config(
    table_indexes=[
        {'columns': ['content_sha256']},
        {'columns': ['tenant_id', 'tensor_name']},
        {'columns': ['pending_upload_id'], 'where': 'pending_upload_id is not null', 'name': 'tensor_metadata_pending_upload_idx'},
    ],
    post_hook=[
        "create or replace trigger tensor_metadata_byte_size_check
         before insert or update of byte_size, element_count, dtype on {{ this }}
         for each row execute function {{ target.schema }}.tensor_metadata_validate()"
    ]
) }}
{{ contract_select() }}
