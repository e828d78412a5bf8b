-- How far this server's data is behind the primary, for analysts and monitors on a read replica or
-- hot standby. One row, meaningful on both: on the primary is_standby is false and the lag is 0.
-- A standby that has replayed everything it received is 0 behind even when the primary has been idle
-- for hours (its last replayed transaction is old, not late), so the time lag counts only while WAL
-- received is still waiting to be replayed (the check PostgreSQL's docs and Neon's suggest). On Neon
-- a replica may report no received position; then the age of the last replayed transaction is the lag.
with

positions as (
    select
        pg_is_in_recovery() as is_standby,
        pg_last_xact_replay_timestamp() as last_replayed_at,
        pg_last_wal_receive_lsn() as received_lsn,
        pg_last_wal_replay_lsn() as replayed_lsn
),

final as (
    select
        is_standby,
        last_replayed_at,
        case
            when not is_standby then 0::numeric
            when received_lsn is not null and received_lsn = replayed_lsn then 0::numeric
            when last_replayed_at is null then null
            else round(extract(epoch from clock_timestamp() - last_replayed_at), 3)
        end as replay_lag_seconds,
        case
            when not is_standby then 0::numeric
            else greatest(pg_wal_lsn_diff(received_lsn, replayed_lsn), 0)
        end as replay_lag_bytes,
        received_lsn::text as received_lsn,
        replayed_lsn::text as replayed_lsn,
        clock_timestamp() as measured_at
    from positions
)

select * from final
