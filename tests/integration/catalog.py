"""A comparable snapshot of a database's schema: what dbt built versus what a SQL file built."""

from __future__ import annotations

import re

import psycopg

SCHEMAS = ("public", "analytics", "reference")

QUERIES = {
    "columns": """
        select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attstorage
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm') and a.attnum > 0
          and not a.attisdropped
        order by 1, 2""",
    "constraints": """
        select c.relname, k.conname, pg_get_constraintdef(k.oid)
        from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s)
        order by 1, 2""",
    "indexes": """
        select tablename, indexname, indexdef from pg_indexes where schemaname = any(%(schemas)s) order by 1, 2""",
    "views": """
        select schemaname, viewname, definition from pg_views where schemaname = any(%(schemas)s) order by 1, 2""",
    "functions": """
        select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid),
               p.provolatile, p.prosecdef
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%(schemas)s)
          and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
        order by 1, 2, 3""",
    "triggers": """
        select c.relname, t.tgname, pg_get_triggerdef(t.oid)
        from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s) and not t.tgisinternal
        order by 1, 2""",
    "comments": """
        select c.relname, coalesce(a.attname, ''), d.description
        from pg_description d
        join pg_class c on c.oid = d.objoid and d.classoid = 'pg_class'::regclass
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attribute a on a.attrelid = c.oid and a.attnum = d.objsubid and d.objsubid > 0
        where n.nspname = any(%(schemas)s)
        order by 1, 2""",
}


def snapshot(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query, {"schemas": list(SCHEMAS)}).fetchall() for name, query in QUERIES.items()}


def index_scanned(conn: psycopg.Connection, plan: str) -> str | None:
    """The index a plan scans, named by its partitioned parent index when the scan uses one partition's
    share of it (embeddings is partitioned by model), or None when no index is scanned."""
    used = re.search(r"Index Scan using (\S+)", plan)
    if not used:
        return None
    parent = conn.execute("select inhparent::regclass::text from pg_inherits where inhrelid = %s::regclass",
                          (used.group(1),)).fetchone()
    return parent[0] if parent else used.group(1)
