-- How much expired cache is waiting for `arc-halo cache purge`, per model?
select
    model_id,
    cache_name,
    sum(expired_unpurged_count) as expired_entries,
    pg_size_pretty(sum(expired_unpurged_bytes)) as expired_bytes,
    round(avg(hit_rate), 4) as mean_hit_rate
from {{ ref('cache_efficiency') }}
group by model_id, cache_name
order by sum(expired_unpurged_bytes) desc
