"""Run every benchmark under benchmarks/ and print all figures in one table, each beside its baseline.

    make bench                                     # the inputs the issues name (about 15 minutes here)
    .venv/bin/python benchmarks/run_all.py --quick  # smaller inputs, for a smoke run

Each script prints its own lines as it goes, plus machine-readable result lines (common.report) that
are collected here. The exit status is non-zero when a script fails; a missed target is reported in
the table, not as a failure, because these figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import RESULT_PREFIX

# script -> arguments for --quick (no arguments: the script's defaults are the issues' figures)
BENCHMARKS = {
    "bench_tensor_store.py": ["--megabytes", "64", "--repeats", "2"],
    "bench_metric_ingest.py": ["--rows", "200000", "--runs", "2", "--baseline-rows", "5000"],
    "bench_kv_cache.py": ["--entries", "400", "--repeats", "100"],
    "bench_similarity.py": ["--vectors", "10000", "--queries", "30"],
    "bench_training_progress.py": ["--rows", "300000", "--repeats", "10"],
    "bench_online_ddl.py": ["--rows", "200000", "--analyst-seconds", "5"],
    "bench_model_import.py": ["--skip-bert"],
    "bench_mlflow.py": ["--rows", "10000"],
}


def run(script: str, arguments: list[str]) -> tuple[int, list[dict]]:
    results = []
    command = [sys.executable, str(Path(__file__).parent / script), *arguments]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            if line.startswith(RESULT_PREFIX):
                results.append(json.loads(line[len(RESULT_PREFIX):]))
            else:
                print(line, end="", flush=True)
    return process.returncode, results


def table(results: list[dict]) -> str:
    header = ("figure", "value", "baseline", "ratio", "target", "")
    rows = [header] + [
        (r["figure"], f"{r['value']:,.2f} {r['unit']}", f"{r['baseline']}: {r['baseline_value']:,.2f} {r['unit']}",
         f"{r['ratio']:.2f}x", r["target"], "met" if r["met"] else "NOT met")
        for r in results
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args()
    failed, results = 0, []
    for script, quick_arguments in BENCHMARKS.items():
        print(f"== {script}", flush=True)
        status, found = run(script, quick_arguments if args.quick else [])
        failed |= status
        results += found
    print("\n" + table(results))
    print("\nratio: how many times better than the baseline (speed, or latency inverted); figures vary +/-30% run to run.")
    sys.exit(failed)


if __name__ == "__main__":
    main()
