"""Housekeeping the seed asks for: cache TTL purges and training_metrics partitions.

The SQL lives in functions the dbt project creates (macros/schema_helpers); this module only loops
and commits, so each batch's locks are released before the next.
"""

from __future__ import annotations

import psycopg

from arc_halo.errors import public_call
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
