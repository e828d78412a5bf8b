-- Inference performance per model and UTC day: sessions, tokens, throughput and latency percentiles.
with

sessions as (
    select
        inference_session_id,
        model_id,
        generated_tokens,
        prompt_tokens,
        status,
        (started_at at time zone 'UTC')::date as activity_date,
        extract(epoch from ended_at - started_at) as duration_seconds
    from {{ ref('inference_sessions') }}
),

latencies as (
    select
        sessions.model_id,
        sessions.activity_date,
        percentile_cont(0.5) within group (order by metrics.value) as p50_latency_ms,
        percentile_cont(0.95) within group (order by metrics.value) as p95_latency_ms
    from {{ ref('inference_metrics') }} as metrics
    inner join sessions on metrics.inference_session_id = sessions.inference_session_id
    where metrics.metric_name = 'latency_ms'
    group by sessions.model_id, sessions.activity_date
),

volumes as (
    select
        model_id,
        activity_date,
        count(*) as session_count,
        count(*) filter (where status = 'failed') as failed_session_count,
        sum(prompt_tokens) as prompt_tokens,
        sum(generated_tokens) as generated_tokens,
        sum(generated_tokens) filter (where duration_seconds > 0)
        / nullif(sum(duration_seconds) filter (where duration_seconds > 0), 0) as tokens_per_second
    from sessions
    group by model_id, activity_date
),

final as (
    select
        volumes.model_id,
        registry.model_name,
        volumes.activity_date,
        volumes.session_count,
        volumes.failed_session_count,
        volumes.prompt_tokens,
        volumes.generated_tokens,
        volumes.tokens_per_second,
        latencies.p50_latency_ms,
        latencies.p95_latency_ms
    from volumes
    inner join {{ ref('models') }} as registry on volumes.model_id = registry.model_id
    left join latencies
        on volumes.model_id = latencies.model_id and volumes.activity_date = latencies.activity_date
)

select * from final
