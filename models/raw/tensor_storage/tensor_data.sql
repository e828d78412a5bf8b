{#- Chunks are random-looking bytes: compression costs CPU on every read and saves nothing,
    so the data column is stored out of line without compression (storage external). -#}
{{ config(column_storage={'chunk_data': 'external'}) }}
{{ contract_select() }}
