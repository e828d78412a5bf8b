{#-
    on-run-end: where the server has pg_cron (Neon offers it; CREATE EXTENSION pg_cron in the
    `postgres` database), schedule run_upkeep() in this database every 15 minutes under the job name
    `arc_halo_upkeep:<database>` (scheduling a name again updates the job, so every build may run it).
    Elsewhere (the embedded server, plain PostgreSQL) it does nothing and the scheduled workflow
    `.github/workflows/upkeep.yml` runs `arc-halo upkeep run` instead. A login that may not schedule
    gets a warning, not a failed build. `var('upkeep_schedule')` changes the cron expression.
-#}
{% macro register_upkeep_schedule() -%}
    {%- if execute -%}
select {{ target.schema }}.register_upkeep_schedule({{ dbt.string_literal(var('upkeep_schedule', '*/15 * * * *')) }})
    {%- endif -%}
{%- endmacro %}


{% macro helper_register_upkeep_schedule() -%}
-- Returns what it did: 'scheduled <job> <schedule>', or why nothing was scheduled.
create or replace function {{ target.schema }}.register_upkeep_schedule(schedule text default '*/15 * * * *')
returns text
language plpgsql
set search_path = {{ target.schema }}, pg_temp
as $fn$
declare
    job_name text := 'arc_halo_upkeep:' || current_database();
    command text := format('select %I.run_upkeep(%L)', '{{ target.schema }}', 'pg_cron');
begin
    if not exists (select from pg_proc as p join pg_namespace as n on p.pronamespace = n.oid
                   where n.nspname = 'cron' and p.proname = 'schedule_in_database') then
        return 'not scheduled: no pg_cron here (the scheduled workflow runs arc-halo upkeep run)';
    end if;
    -- Called dynamically: without pg_cron the function would not even be created otherwise.
    execute 'select cron.schedule_in_database($1, $2, $3, $4)' using job_name, schedule, command, current_database();
    return format('scheduled %s %s: %s', job_name, schedule, command);
exception when insufficient_privilege then
    raise warning 'upkeep not scheduled in pg_cron (%): schedule it as a role that may, or let the workflow run it', sqlerrm;
    return 'not scheduled: ' || sqlerrm;
end
$fn$;
{%- endmacro %}
