-- Python model: computed by arc_halo.python_models.attention_head_stats (numpy) in `arc-halo build`.
-- depends_on: {{ ref('attention_patterns') }}
{{ contract_select() }}
