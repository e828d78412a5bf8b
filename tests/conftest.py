"""What every test suite here shares (tests/integration and dbt's adapter suite in tests/functional)."""

from __future__ import annotations

import os

import pytest

# Skips that are by design, allowed in CI: every other skip fails there, so a tool that did not install
# (PgBouncer, Chromium, SeaweedFS...) turns CI red instead of quietly skipping its tests. Each entry is the
# start of a skip reason.
SKIPS_ALLOWED_IN_CI = (
    "the committed file is generated on PostgreSQL 18",  # the master-schema comparison on the 16 pass
    "restarts the embedded server",  # only with ARC_HALO_TEST_DATABASE_URL (a server the tests must not stop)
)


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _fail_skip_in_ci(report) -> None:
    if not (report.skipped and running_in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not reason.startswith(SKIPS_ALLOWED_IN_CI):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    _fail_skip_in_ci((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # a module skipped as a whole
    _fail_skip_in_ci((yield).get_result())
