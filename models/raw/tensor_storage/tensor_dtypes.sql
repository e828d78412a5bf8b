{{ config(post_hook=[
    "insert into {{ this }} (dtype, bits_per_element, numpy_name, value_kind, description)
     select dtype, bits_per_element, numpy_name, value_kind, description from {{ ref('tensor_dtype_catalog') }}
     on conflict (dtype) do update set
         bits_per_element = excluded.bits_per_element, numpy_name = excluded.numpy_name,
         value_kind = excluded.value_kind, description = excluded.description"
]) }}
{{ contract_select() }}
