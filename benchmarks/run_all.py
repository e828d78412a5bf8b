"""Run every benchmark under benchmarks/ in turn; each prints its figures beside a same-run baseline.

    make bench            # defaults (the figures the issues ask for)
    .venv/bin/python benchmarks/run_all.py --quick   # smaller inputs, for a smoke run
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCHMARKS = {
    "bench_training_progress.py": ["--rows", "300000", "--repeats", "10"],
    "bench_metric_ingest.py": ["--rows", "200000", "--baseline-rows", "5000"],
    "bench_kv_cache.py": ["--entries", "400", "--repeats", "100"],
    "bench_similarity.py": ["--vectors", "10000", "--queries", "30"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args()
    failed = 0
    for script, quick_args in BENCHMARKS.items():
        print(f"== {script}", flush=True)
        command = [sys.executable, str(Path(__file__).parent / script), *(quick_args if args.quick else [])]
        failed |= subprocess.run(command).returncode
    sys.exit(failed)


if __name__ == "__main__":
    main()
