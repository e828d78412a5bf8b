"""KV-cache read latency: get_kv of one (session, layer) entry over loopback, against the same work done by
hand on the row's primary key (the floor for this read), same run. get_kv counts the hit, so it is an
UPDATE ... RETURNING committed in its own transaction; the baseline is too: one primary-key
UPDATE ... RETURNING of the row, committed, on the same binary cursor settings.
The target: median under 2 ms.

    .venv/bin/python benchmarks/bench_kv_cache.py [--entries 2000] [--repeats 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_model, report, scratch_database, summary, timings_ms  # noqa: E402

from arc_halo import inference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000, help="cache entries (sessions x layers)")
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    with scratch_database() as url, psycopg.connect(url) as conn:
        model_id, layers = bench_model(conn, "kv", hidden_size=768, num_layers=20, heads=12, layers=True)
        conn.commit()
        rng = np.random.default_rng(0)
        keys = rng.standard_normal((12, 128, 64)).astype(np.float16)  # 12 heads x 128 positions x 64 dims: 196 KB
        sessions = [inference.start_session(conn, model_id) for _ in range(args.entries // len(layers))]
        for session in sessions:
            for layer in layers:
                inference.put_kv(conn, session, layer, keys, keys, position_start=0)
        target_session, target_layer = sessions[len(sessions) // 2], layers[7]
        entry_id = conn.execute("select kv_cache_id from kv_cache where inference_session_id = %s and layer_id = %s",
                                (target_session, target_layer)).fetchone()[0]
        conn.commit()  # from here each read is its own committed transaction, not a savepoint in an open one
        get = timings_ms(lambda: inference.get_kv(conn, target_session, target_layer), args.repeats, warmup=20)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # each call committed

        def by_primary_key() -> None:
            with conn.transaction(), conn.cursor(binary=True) as cursor:
                cursor.execute("""update kv_cache set hit_count = hit_count + 1, last_accessed_at = now()
                                  where kv_cache_id = %s returning key_data, value_data""", (entry_id,)).fetchall()

        floor = timings_ms(by_primary_key, args.repeats, warmup=20)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # each call committed
        print(f"{'get_kv (one session, layer; 393 KB)':38s} {summary(get)}")
        print(f"{'baseline: primary-key update..returning':38s} {summary(floor)}")
        report("KV-cache get_kv of one (session, layer), 393 KB (median)", statistics.median(get), "ms",
               "primary-key update ... returning of the row, committed", statistics.median(floor),
               target="median < 2 ms",
               met=statistics.median(get) < 2, higher_is_better=False)


if __name__ == "__main__":
    main()
