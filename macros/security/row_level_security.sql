{#-
    Row-level security, off by default (the seed: "if needed"); on with --vars '{row_level_security: true}'.
    Tables with tenant_id see rows of the tenant in the session setting app.tenant_id (none when it is
    unset); every other operational table sees rows whose parent row is visible, so isolation follows
    the foreign keys down. The owner (dbt's login) is not subject to the policies.
-#}

{% macro tenant_parents() -%}
    {#- child table -> (its column, parent table, parent column): the not-null key to a visible parent. -#}
    {{ return({
        'transformer_layers': ('model_id', 'models', 'model_id'),
        'attention_heads': ('layer_id', 'transformer_layers', 'layer_id'),
        'tensor_data': ('tensor_id', 'tensor_metadata', 'tensor_id'),
        'model_weights': ('model_id', 'models', 'model_id'),
        'embeddings': ('model_id', 'models', 'model_id'),
        'training_metrics': ('training_session_id', 'training_sessions', 'training_session_id'),
        'training_metrics_latest': ('training_session_id', 'training_sessions', 'training_session_id'),
        'metric_batches': ('training_session_id', 'training_sessions', 'training_session_id'),
        'optimizer_state': ('training_session_id', 'training_sessions', 'training_session_id'),
        'model_checkpoints': ('model_id', 'models', 'model_id'),
        'gradient_checkpoints': ('model_id', 'models', 'model_id'),
        'activation_cache': ('inference_session_id', 'inference_sessions', 'inference_session_id'),
        'kv_cache': ('inference_session_id', 'inference_sessions', 'inference_session_id'),
        'inference_metrics': ('inference_session_id', 'inference_sessions', 'inference_session_id'),
        'attention_patterns': ('inference_session_id', 'inference_sessions', 'inference_session_id'),
        'reactor_models': ('reactor_id', 'cognitive_fusion_reactors', 'reactor_id'),
        'fusion_operations': ('reactor_id', 'cognitive_fusion_reactors', 'reactor_id'),
        'model_interaction_graph': ('reactor_id', 'cognitive_fusion_reactors', 'reactor_id'),
        'cognitive_state': ('reactor_id', 'cognitive_fusion_reactors', 'reactor_id'),
        'reactor_metrics': ('reactor_id', 'cognitive_fusion_reactors', 'reactor_id'),
    }) }}
{%- endmacro %}


{% macro tenant_isolation_policy() -%}
    {#- Post-hook of every operational table; reference tables (tensor_dtypes) stay readable to all. -#}
    {%- set parent = tenant_parents().get(this.identifier) -%}
    {%- if 'tenant_id' not in model.columns and parent is none -%}
        select 1
    {%- elif var('row_level_security') -%}
        {%- if 'tenant_id' in model.columns -%}
            {%- set rule = "tenant_id = current_setting('app.tenant_id', true)" -%}
        {%- else -%}
            {%- set rule = "exists (select from " ~ this.schema ~ "." ~ parent[1] ~ " as parent where parent." ~ parent[2] ~ " = " ~ this.identifier ~ "." ~ parent[0] ~ ")" -%}
        {%- endif -%}
alter table {{ this }} enable row level security;
drop policy if exists tenant_isolation on {{ this }};
create policy tenant_isolation on {{ this }} using ({{ rule }}) with check ({{ rule }})
    {%- else -%}
drop policy if exists tenant_isolation on {{ this }};
alter table {{ this }} disable row level security
    {%- endif -%}
{%- endmacro %}


{% macro invoker_view_security() -%}
    {#- Post-hook of the seed's views: with RLS on they run with the caller's rights, so they cannot be a
        way around the policies. security_invoker needs PostgreSQL 15+. -#}
    {%- if var('row_level_security') -%}
        {%- set version = run_query("select current_setting('server_version_num')::int").columns[0].values()[0] if execute else 150000 -%}
        {%- if version < 150000 -%}
            {{ exceptions.raise_compiler_error("row_level_security needs PostgreSQL 15+ (security_invoker views); this server is " ~ version) }}
        {%- endif -%}
alter view {{ this }} set (security_invoker = true)
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
