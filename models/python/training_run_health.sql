-- Python model: computed by arc_halo.python_models.training_run_health (numpy) in `arc-halo build`.
-- depends_on: {{ ref('training_metrics') }}
{{ contract_select() }}
