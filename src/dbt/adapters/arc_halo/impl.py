"""The adapter: PostgresAdapter with Python models executed in-process.

Project operations that macros and hooks call as `adapter.<name>(...)` belong here as `@available`
methods (dbt exposes only those to Jinja), each a thin call into its own module.
"""

from __future__ import annotations

from typing import Any

import psycopg
from dbt.adapters.base.impl import AdapterTrackingRelationInfo
from dbt.adapters.events.logging import AdapterLogger
from dbt.adapters.base.meta import available
from dbt.adapters.contracts.connection import AdapterResponse
from dbt.adapters.contracts.relation import RelationConfig
from dbt.adapters.postgres.impl import PostgresAdapter
from dbt_common.exceptions import DbtRuntimeError

from arc_halo.errors import ArcHaloError
from arc_halo.redaction import redact

from dbt.adapters.arc_halo import __version__, build_lock, python_model, schema_changes
from dbt.adapters.arc_halo.connections import ArcHaloConnectionManager


logger = AdapterLogger("arc_halo")


class ArcHaloAdapter(PostgresAdapter):
    ConnectionManager = ArcHaloConnectionManager

    @classmethod
    def get_adapter_run_info(cls, config: RelationConfig) -> AdapterTrackingRelationInfo:
        """dbt derives the adapter's module from the class name ("ArcHalo" -> archalo); name it."""
        info = PostgresAdapter.get_adapter_run_info(config)
        # dbt-adapters builds it the same way: mypy counts Hashable's __hash__ as abstract, the class is not
        return AdapterTrackingRelationInfo(  # type: ignore[abstract]
            adapter_name=cls.type(), base_adapter_version=info.base_adapter_version,
            adapter_version=__version__.version, model_adapter_details=info.model_adapter_details,
        )

    def submit_python_job(self, parsed_model: dict[str, Any], compiled_code: str) -> AdapterResponse:
        """Called by the `table` materialization's `statement('main', language='python')`."""
        rows = python_model.run(self, parsed_model, compiled_code)
        return AdapterResponse(_message=f"INSERT {rows}", code="INSERT", rows_affected=rows)

    @available
    def apply_migrations(self) -> str:
        """on-run-start, before every other hook: pending migrations/ (arc_halo.migrations)."""
        return schema_changes.apply_migrations(self)

    @available
    def apply_online_ddl(self, steps: list[dict[str, str]]) -> int:
        """operational_table's changes to an existing table, without stalling its writers (arc_halo.online_ddl)."""
        return schema_changes.apply_online_ddl(self, steps)

    @available
    def acquire_build_lock(self, invocation_id: str, wait_seconds: int) -> str:
        """on-run-start, first: the build lease, held by a session of this process until on-run-end
        (build_lock.py says why a login cannot keep a dead build's lease alive)."""
        conninfo = schema_changes.credentials_conninfo(self.config.credentials, "dbt arc-halo build lock")
        try:
            build_lock.acquire(conninfo, invocation_id, wait_seconds, warn=logger.warning)
        except (ArcHaloError, psycopg.Error) as exc:  # BuildLockBusy among them
            raise DbtRuntimeError(redact(str(exc))) from None
        return ""

    @available
    def release_build_lock(self, invocation_id: str) -> str:
        """on-run-end (or a build that stops early): give the lease up and end the lock session."""
        build_lock.release(invocation_id)
        return ""
