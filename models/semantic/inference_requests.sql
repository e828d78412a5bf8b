-- One row per inference session with its latency samples and cache use: the facts behind the
-- semantic layer's inference latency (mean of latency_ms samples) and cache hit rate
-- (hits / (hits + entries): every entry was written after a miss).
with

sessions as (
    select
        inference_session_id,
        model_id,
        started_at,
        generated_tokens
    from {{ ref('inference_sessions') }}
),

latencies as (
    select
        inference_session_id,
        count(*) as latency_sample_count,
        sum(value) as latency_ms_sum
    from {{ ref('inference_metrics') }}
    where metric_name = 'latency_ms'
    group by inference_session_id
),

caches as (
    select
        inference_session_id,
        sum(entry_count) as cache_entry_count,
        sum(hit_count) as cache_hit_count
    from {{ ref('cache_efficiency') }}
    group by inference_session_id
),

final as (
    select
        sessions.inference_session_id,
        sessions.model_id,
        sessions.started_at,
        coalesce(sessions.generated_tokens, 0) as generated_tokens,
        coalesce(latencies.latency_sample_count, 0) as latency_sample_count,
        coalesce(latencies.latency_ms_sum, 0) as latency_ms_sum,
        coalesce(caches.cache_entry_count, 0) as cache_entry_count,
        coalesce(caches.cache_hit_count, 0) as cache_hit_count
    from sessions
    left join latencies on sessions.inference_session_id = latencies.inference_session_id
    left join caches on sessions.inference_session_id = caches.inference_session_id
)

select * from final
