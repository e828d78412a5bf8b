"""Housekeeping the specification asks for: cache TTL purges and training_metrics partitions, by hand or
as the scheduled upkeep (`run_upkeep`, macros/upkeep/).

The SQL lives in functions the dbt project creates (macros/schema_helpers); this module only loops
and commits, so each batch's locks are released before the next.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.rows import one_value
from arc_halo.validation import whole_number

MAX_PURGE_BATCH = 1_000_000
MAX_PARTITION_MONTHS = 120  # ten years either way; more is a typo, not a plan


@public_call
def purge_expired_cache(conn: psycopg.Connection, batch_size: int = 5000) -> dict[str, int]:
    """Delete every expired activation_cache and kv_cache row, batch by batch; returns counts per table."""
    whole_number("batch_size", batch_size, 1, MAX_PURGE_BATCH)
    totals = {"activation_cache": 0, "kv_cache": 0}
    while True:
        with conn.transaction():
            rows = conn.execute("select cache_table, purged from purge_expired_cache_batch(%s)", (batch_size,)).fetchall()
        for table, purged in rows:
            totals[table] += purged
        if not any(purged for _, purged in rows):
            return totals


@public_call
def create_metric_partitions(conn: psycopg.Connection, months_back: int = 1, months_ahead: int = 3) -> list[str]:
    """Create missing monthly partitions of training_metrics; returns the names created."""
    whole_number("months_back", months_back, 0, MAX_PARTITION_MONTHS)
    whole_number("months_ahead", months_ahead, 0, MAX_PARTITION_MONTHS)
    with conn.transaction():
        return [row[0] for row in conn.execute(
            "select * from create_training_metrics_partitions(%s, %s)", (months_back, months_ahead)
        )]


@dataclass(frozen=True)
class UpkeepRun:
    """One row of upkeep_runs: what a run of run_upkeep() did, or why it failed."""

    upkeep_run_id: uuid.UUID
    status: str
    kv_cache_rows_removed: int
    activation_cache_rows_removed: int
    expired_rows_remaining: bool
    partitions_created: list[str]
    error: str | None


UPKEEP_TRIGGERS = ("manual", "workflow", "pg_cron")


@public_call
def run_upkeep(conn: psycopg.Connection, triggered_by: str = "manual", batch_size: int = 5000, max_batches: int = 20,
               months_ahead: int = 3) -> UpkeepRun:
    """One run of the scheduled upkeep (the SQL function pg_cron and the workflow call): expired cache
    rows removed, partitions created ahead, the run recorded in upkeep_runs (also when it fails)."""
    if triggered_by not in UPKEEP_TRIGGERS:
        raise InvalidInputError(f"triggered_by must be one of {', '.join(UPKEEP_TRIGGERS)}, got {triggered_by!r}")
    whole_number("batch_size", batch_size, 1, MAX_PURGE_BATCH)
    whole_number("max_batches", max_batches, 1, 1_000_000)
    whole_number("months_ahead", months_ahead, 0, MAX_PARTITION_MONTHS)
    with conn.transaction():
        run_id = one_value(conn.execute("select run_upkeep(%s, %s, %s, %s)",
                                        (triggered_by, batch_size, max_batches, months_ahead)))
        row = conn.execute("""select upkeep_run_id, status, kv_cache_rows_removed, activation_cache_rows_removed,
                                     expired_rows_remaining, partitions_created, error
                              from upkeep_runs where upkeep_run_id = %s""", (run_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no upkeep run {run_id}")
    upkeep_run_id, status, kv_removed, activation_removed, remaining, partitions, error = row
    return UpkeepRun(upkeep_run_id, status, kv_removed, activation_removed, remaining, list(partitions), error)


@public_call
def upkeep_status(conn: psycopg.Connection) -> dict[str, object]:
    """analytics.upkeep_status as column -> value: the last run, the last success, recent failures."""
    cursor = conn.execute("select * from analytics.upkeep_status")
    row = cursor.fetchone()
    if cursor.description is None:
        raise AssertionError("unreachable: a SELECT describes its columns")
    return dict(zip([column.name for column in cursor.description], row or [None] * len(cursor.description), strict=True))
