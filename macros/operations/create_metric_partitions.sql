{#-
    dbt run-operation create_metric_partitions --args '{months_back: 1, months_ahead: 6}'
    Creates missing monthly partitions of training_metrics (never drops any). (CLI: arc-halo partitions create.)
-#}
{% macro create_metric_partitions(months_back=1, months_ahead=3) %}
    {%- set result = run_query('select * from ' ~ target.schema ~ '.create_training_metrics_partitions(' ~ (months_back | int) ~ ', ' ~ (months_ahead | int) ~ ')') -%}
    {%- do run_query('commit') -%}
    {{ log("created partitions: " ~ (result.columns[0].values() | join(', ') or 'none needed'), info=true) }}
{% endmacro %}


{#-
    dbt run-operation detach_metric_partitions --args '{older_than: "2025-01-01", drop: false}'
    Only by explicit request: detaches monthly partitions that end on or before `older_than`
    (they stay as plain tables for archiving); with drop: true they are dropped instead.
-#}
{% macro detach_metric_partitions(older_than, drop=false) %}
    {%- set query -%}
        select c.relname
        from pg_inherits as i
        inner join pg_class as c on i.inhrelid = c.oid
        where i.inhparent = '{{ target.schema }}.training_metrics'::regclass
          and c.relname ~ '^training_metrics_p[0-9]{6}$'
          and to_date(right(c.relname, 6), 'YYYYMM') + interval '1 month' <= {{ dbt.string_literal(older_than) }}::date
        order by 1
    {%- endset -%}
    {%- set partitions = run_query(query).columns[0].values() -%}
    {%- for name in partitions -%}
        {%- do run_query('alter table ' ~ target.schema ~ '.training_metrics detach partition ' ~ target.schema ~ '.' ~ name) -%}
        {%- if drop -%}{%- do run_query('drop table ' ~ target.schema ~ '.' ~ name) -%}{%- endif -%}
    {%- endfor -%}
    {%- do run_query('commit') -%}
    {{ log(("dropped" if drop else "detached") ~ ": " ~ (partitions | join(', ') or 'none'), info=true) }}
{% endmacro %}
