{#-
    dbt run-operation purge_expired_cache --args '{batch_size: 5000}'
    Deletes expired activation_cache and kv_cache rows in batches, committing after each, so readers
    are never blocked for long; logs how many rows went. (CLI: arc-halo cache purge.)
-#}
{% macro purge_expired_cache(batch_size=5000, max_batches=100000) %}
    {%- set totals = {'activation_cache': 0, 'kv_cache': 0} -%}
    {%- for batch in range(max_batches) -%}
        {%- set result = run_query('select cache_table, purged from ' ~ target.schema ~ '.purge_expired_cache_batch(' ~ (batch_size | int) ~ ')') -%}
        {%- do run_query('commit') -%}
        {%- set ns = namespace(purged=0) -%}
        {%- for row in result -%}
            {%- do totals.update({row[0]: totals[row[0]] + row[1]}) -%}
            {%- set ns.purged = ns.purged + row[1] -%}
        {%- endfor -%}
        {%- if ns.purged == 0 -%}{%- break -%}{%- endif -%}
    {%- endfor -%}
    {{ log("purged expired rows: activation_cache=" ~ totals['activation_cache'] ~ " kv_cache=" ~ totals['kv_cache'], info=true) }}
    {{ return(totals) }}
{% endmacro %}
