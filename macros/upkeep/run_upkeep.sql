{#-
    The scheduled upkeep: one function that pg_cron, the scheduled workflow and `arc-halo upkeep run`
    all call, so every schedule runs the same SQL. Created on-run-start with the other helpers.
-#}

{% macro helper_run_upkeep() -%}
-- Removes expired kv_cache and activation_cache rows (batch_size rows per table per batch, at most
-- max_batches batches, so one run holds its locks briefly and a large backlog is spread over runs),
-- then creates training_metrics partitions months_ahead ahead. Records the run in upkeep_runs and
-- returns its id. A failure (e.g. waiting longer than lock_wait for a lock) rolls the run's work back
-- and is recorded as a failed run with the error, so it shows in analytics.upkeep_status.
create or replace function {{ target.schema }}.run_upkeep(
    triggered_by text default 'manual',
    batch_size integer default 5000,
    max_batches integer default 20,
    months_ahead integer default 3,
    lock_wait interval default '10 seconds'
)
returns uuid
language plpgsql
set search_path = {{ target.schema }}, pg_temp
as $fn$
declare
    run_id uuid := gen_random_uuid();
    run_started timestamptz := clock_timestamp();
    kv_removed bigint := 0;
    activation_removed bigint := 0;
    removed_in_batch bigint;
    batch_number integer := 0;
    backlog boolean := false;
    created text[] := '{}';
    caller_lock_timeout text := current_setting('lock_timeout');
begin
    if batch_size < 1 or max_batches < 1 or months_ahead < 0 then
        raise exception 'run_upkeep: batch_size and max_batches must be at least 1, months_ahead at least 0';
    end if;
    begin
        perform set_config('lock_timeout', (extract(epoch from lock_wait) * 1000)::bigint::text || 'ms', true);
        loop
            batch_number := batch_number + 1;
            removed_in_batch := 0;
            declare
                purged record;
            begin
                for purged in select * from purge_expired_cache_batch(batch_size) loop
                    removed_in_batch := removed_in_batch + purged.purged;
                    if purged.cache_table = 'kv_cache' then
                        kv_removed := kv_removed + purged.purged;
                    else
                        activation_removed := activation_removed + purged.purged;
                    end if;
                end loop;
            end;
            exit when removed_in_batch = 0;
            if batch_number >= max_batches then
                backlog := exists (select from kv_cache where expires_at <= now())
                    or exists (select from activation_cache where expires_at <= now());
                exit;
            end if;
        end loop;
        created := array(select create_training_metrics_partitions(0, months_ahead));
        perform set_config('lock_timeout', caller_lock_timeout, true);
        insert into upkeep_runs (upkeep_run_id, triggered_by, status, started_at, finished_at,
                                 kv_cache_rows_removed, activation_cache_rows_removed,
                                 expired_rows_remaining, partitions_created)
        values (run_id, triggered_by, 'succeeded', run_started, clock_timestamp(),
                kv_removed, activation_removed, backlog, created);
    exception when others then
        -- Everything the block did is rolled back (and lock_timeout with it); the failure is kept.
        insert into upkeep_runs (upkeep_run_id, triggered_by, status, started_at, finished_at, error)
        values (run_id, triggered_by, 'failed', run_started, clock_timestamp(), sqlerrm);
    end;
    return run_id;
end
$fn$;
{%- endmacro %}
