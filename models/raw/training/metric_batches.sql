{#- One row per MetricLogger flush, inserted in the flush's own transaction: a retry after an
    ambiguous failure (connection lost during commit) finds its batch id here and writes nothing twice. -#}
{{ contract_select() }}
