{#- The stores (file:// directories, s3:// gs:// az:// prefixes) whose objects tensor_metadata.external_uri
    may name. Shared by every tenant and read-only to the application: a tenant able to add one could point
    a tensor at any file of the reading machine. The schema owner registers a store (the library does when
    the owner writes to a new one); reads and writes elsewhere are refused. -#}
{{ config(grants={'select': ['arc_halo_app'], 'insert': [], 'update': [], 'delete': []}) }}
{{ contract_select() }}
