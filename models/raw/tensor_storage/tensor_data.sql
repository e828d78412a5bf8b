{#- Chunks are random-looking bytes: compression costs CPU on every read and saves nothing, so the data
    column is stored without compression (storage external). toast_tuple_target keeps a row of up to a
    page inline: the default ~8 KB chunks (tensors.DEFAULT_CHUNK_BYTES) are written by COPY's bulk heap
    insert, where TOAST would extend its table a page at a time (about twice the server's time). -#}
{{ config(column_storage={'chunk_data': 'external'}, table_options={'toast_tuple_target': 8160}) }}
{{ contract_select() }}
