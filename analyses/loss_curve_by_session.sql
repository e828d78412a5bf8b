-- What did each running session's loss look like, 100 steps at a time? (History, for one chart per run.)
select
    sessions.session_name,
    (metrics.step / 100) * 100 as step_bucket,
    avg(metrics.value) as mean_loss,
    min(metrics.value) as min_loss
from {{ ref('training_metrics') }} as metrics
inner join {{ ref('training_sessions') }} as sessions
    on metrics.training_session_id = sessions.training_session_id
where sessions.status = 'running' and metrics.metric_name = 'loss'
group by sessions.session_name, (metrics.step / 100) * 100
order by sessions.session_name asc, step_bucket asc
