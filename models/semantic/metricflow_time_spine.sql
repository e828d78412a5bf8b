-- One row per UTC day, 2020 to 2040: the time spine MetricFlow joins metrics to, so days without
-- activity show as days and cumulative metrics have every day to fill.
with

days as (
    select day_start::date as date_day
    from generate_series('2020-01-01'::timestamp, '2040-12-31'::timestamp, interval '1 day') as day_start
),

final as (
    select date_day from days
)

select * from final
