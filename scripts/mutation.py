"""Mutation check: do the tests catch the bugs a review once slipped past them?

Each mutation is a small, realistic bug (a text replacement in one file). For each, a scratch copy of the
committed tree gets the bug, and the tests meant to catch it run against the copy (its src/ first on the
path, the embedded server of this checkout); the mutation is *caught* when they fail. Prints one line per
mutation and exits 1 when any survives. Not part of `make test` (each mutation costs a test run):

    make mutation                        # every mutation
    .venv/bin/python scripts/mutation.py full-refresh-rewrites-values    # one, by name
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the project root
    original: str  # must occur exactly once
    mutant: str
    tests: tuple[str, ...]  # pytest node ids meant to catch it


MUTATIONS = (
    Mutation(
        "full-refresh-rewrites-values",
        "src/dbt/include/arc_halo/macros/materializations/operational_table/materialization.sql",
        "        {%- set steps = operational_evolve_table(target_relation, columns, constraints) -%}\n",
        "        {%- set steps = operational_evolve_table(target_relation, columns, constraints) -%}\n"
        "        {%- if flags.FULL_REFRESH and this.identifier == 'models' -%}{%- call statement('mutant') -%}\n"
        "            update {{ target_relation }} set updated_at = updated_at + interval '1 second'\n"
        "        {%- endcall -%}{%- endif -%}\n",
        ("tests/integration/test_operational_tables.py::test_rows_survive_rebuild_and_full_refresh",),
    ),
    Mutation(
        "export-drops-header-metadata",
        "src/arc_halo/hf/export.py",
        '    order = file_order(kept.get("header"), arrays) if kept else None\n',
        "    order, kept = None, None  # the input's header and __metadata__ forgotten\n",
        ("tests/integration/test_real_models.py::test_single_file_with_metadata_exports_byte_identical",),
    ),
    Mutation(
        "build-lock-takes-over-a-live-holder",
        "src/dbt/adapters/arc_halo/build_lock.py",
        "        if not alive:\n",
        "        if True:  # every holder taken for gone\n",
        ("tests/integration/test_build_lock.py::test_builds_at_once_wait_stop_at_once_or_take_over_an_abandoned_lock",),
    ),
    Mutation(
        "exact-search-takes-the-index",
        "src/arc_halo/search.py",
        '            f" order by (embedding <=> %(query)s::vector) + 0, embedding_id limit %(k)s")\n',
        '            f" order by embedding::vector({int(width)}) <=> %(query)s::vector({int(width)}) limit %(k)s")\n',
        ("tests/integration/test_exact_search.py::test_exact_search_equals_numpy_with_the_index_present",),
    ),
)


def committed_tree(into: Path) -> None:
    """The committed HEAD (not the working tree) unpacked into `into`."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def caught(mutation: Mutation) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutation.name}-") as scratch:
        copy = Path(scratch)
        committed_tree(copy)
        target = copy / mutation.path
        text = target.read_text()
        if text.count(mutation.original) != 1:
            raise SystemExit(f"{mutation.name}: the text to mutate is not in {mutation.path} exactly once; update "
                             "the mutation to the code as it is now")
        target.write_text(text.replace(mutation.original, mutation.mutant))
        env = {**os.environ, "PYTHONPATH": str(copy / "src"), "ARC_HALO_PROJECT_DIR": str(copy),
               "ARC_HALO_STATE_DIR": str(ROOT / ".arc_halo"), "CI": ""}
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "--tb=line", "-p", "no:cacheprovider",
                                 *mutation.tests], cwd=copy, env=env, capture_output=True, text=True)
        lines = result.stdout.strip().splitlines() or ["(no output)"]
        # the failing assertion (--tb=line prints it as path:line: message), to see it failed for the reason
        failure = next((line for line in lines if line.startswith(("/", "tests/")) and ": " in line), "")
        return result.returncode not in (0, 5), f"{lines[-1]}; {failure[-200:]}" if failure else lines[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        raise SystemExit(f"unknown mutation(s): {', '.join(sorted(unknown))}; known: "
                         + ", ".join(m.name for m in MUTATIONS))
    survivors = []
    for mutation in chosen:
        started = time.monotonic()
        was_caught, last_line = caught(mutation)
        print(f"{'caught  ' if was_caught else 'SURVIVED'} {mutation.name:40s} {time.monotonic() - started:6.0f} s  "
              f"({last_line})", flush=True)
        if not was_caught:
            survivors.append(mutation.name)
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutations caught")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
