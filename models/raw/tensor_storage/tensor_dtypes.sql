{#- Shared by every tenant: the application reads it and cannot change it (one tenant's edit would break
    every other tenant's inserts). Only the owner writes it, from the seed. -#}
{{ config(
    grants={'select': ['arc_halo_app'], 'insert': [], 'update': [], 'delete': []},
    post_hook=[
        "insert into {{ this }} (dtype, bits_per_element, numpy_name, value_kind, description)
         select dtype, bits_per_element, numpy_name, value_kind, description from {{ ref('tensor_dtype_catalog') }}
         on conflict (dtype) do update set
             bits_per_element = excluded.bits_per_element, numpy_name = excluded.numpy_name,
             value_kind = excluded.value_kind, description = excluded.description"
    ]
) }}
{{ contract_select() }}
