-- Cache use per inference session and cache: entries, hits, hit rate, bytes held, and what has
-- expired but not been purged yet. Each entry was written after a miss, so
-- hit_rate = hits / (hits + entries).
with

entries as (
    select
        'kv_cache' as cache_name,
        inference_session_id,
        hit_count,
        size_bytes,
        expires_at
    from {{ ref('kv_cache') }}
    union all
    select
        'activation_cache' as cache_name,
        inference_session_id,
        hit_count,
        size_bytes,
        expires_at
    from {{ ref('activation_cache') }}
),

final as (
    select
        entries.inference_session_id,
        sessions.model_id,
        entries.cache_name,
        count(*) as entry_count,
        sum(entries.hit_count) as hit_count,
        round(sum(entries.hit_count)::numeric / nullif(sum(entries.hit_count) + count(*), 0), 4) as hit_rate,
        sum(entries.size_bytes) as bytes_held,
        count(*) filter (where entries.expires_at <= now()) as expired_unpurged_count,
        coalesce(sum(entries.size_bytes) filter (where entries.expires_at <= now()), 0) as expired_unpurged_bytes
    from entries
    inner join {{ ref('inference_sessions') }} as sessions
        on entries.inference_session_id = sessions.inference_session_id
    group by entries.inference_session_id, sessions.model_id, entries.cache_name
)

select * from final
