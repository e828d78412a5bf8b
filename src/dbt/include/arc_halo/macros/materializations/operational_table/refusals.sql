{#-
    What the build will not do itself, said so that a person can: a change that would lose or reinterpret
    data is refused with the migration to write; DDL that existing rows violate fails saying to fix them.
-#}

{% macro operational_refuse(relation, problem, what, migration_sql, squawk_ignore=none) -%}
    {#- The advice works when followed literally: a file name the migration runner accepts, the SQL to
        put in it (unqualified names: the runner puts the target schema first on the search path), and
        the command that applies it. The lint gate's squawk accepts the file too: `squawk_ignore` is
        (rules, reason) for statements the change needs that squawk bans by default, silenced for that
        statement with the reason beside it (a block comment, so the advice stays one line). -#}
    {%- if squawk_ignore -%}
        {%- set migration_sql = "/* squawk-ignore " ~ (squawk_ignore[0] | join(', ')) ~ " */ /* " ~ squawk_ignore[1] ~ " */ " ~ migration_sql -%}
    {%- endif -%}
    {%- set version = modules.datetime.datetime.utcnow().strftime('%Y%m%d%H%M%S') -%}
    {%- set file_name = 'migrations/' ~ version ~ '_' ~ modules.re.sub('[^a-z0-9_]+', '_', (relation.identifier ~ '_' ~ what) | lower) ~ '.sql' -%}
    {{ exceptions.raise_compiler_error(
        "arc-halo refuses to change " ~ relation ~ ": " ~ problem ~ ". Nothing was changed. "
        ~ "Write the change as a migration: create " ~ file_name ~ " containing `" ~ migration_sql ~ "` "
        ~ "then run `arc-halo db migrate` (every build also applies pending migrations first) and build again; "
        ~ "or restore the contract in the model's YAML.") }}
{%- endmacro %}


{% macro operational_guarded(statement, relation, what) -%}
    {#- Run DDL that existing rows might violate; on failure, say which rows and what to write. -#}
do $arc_halo_guard$
begin
    {{ statement }};
exception when others then
    raise exception using
        errcode = sqlstate,
        message = format(
            'arc-halo: cannot %s on %s: %s. Existing rows violate it; nothing was changed. '
            'Write a migration in migrations/ that fixes those rows (arc-halo db migrate), then build again.',
            {{ dbt.string_literal(what) }}, {{ dbt.string_literal(relation) }}, sqlerrm);
end
$arc_halo_guard$;
{%- endmacro %}
