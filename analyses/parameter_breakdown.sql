-- Where do a model's parameters live: which layers and kinds, and how much of it is frozen?
select
    model_name,
    coalesce(layer_index::text, 'model-level') as layer,
    parameter_kind,
    parameter_count,
    frozen_parameter_count,
    round(100.0 * parameter_count / sum(parameter_count) over (partition by model_id), 2) as percent_of_model
from {{ ref('model_layer_parameters') }}
order by model_name asc, layer_index asc nulls first, parameter_kind asc
