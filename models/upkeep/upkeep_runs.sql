{#- One row per run of run_upkeep() (pg_cron or the scheduled workflow), inserted by the function. -#}
{{ contract_select() }}
