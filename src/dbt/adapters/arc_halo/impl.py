"""The adapter: PostgresAdapter with Python models executed in-process.

Project operations that macros and hooks call as `adapter.<name>(...)` belong here as `@available`
methods (dbt exposes only those to Jinja), each a thin call into its own module.
"""

from __future__ import annotations

from dbt.adapters.base.impl import AdapterTrackingRelationInfo
from dbt.adapters.base.meta import available
from dbt.adapters.contracts.connection import AdapterResponse
from dbt.adapters.postgres.impl import PostgresAdapter

from dbt.adapters.arc_halo import __version__, python_model, schema_changes
from dbt.adapters.arc_halo.connections import ArcHaloConnectionManager


class ArcHaloAdapter(PostgresAdapter):
    ConnectionManager = ArcHaloConnectionManager

    @classmethod
    def get_adapter_run_info(cls, config) -> AdapterTrackingRelationInfo:
        """dbt derives the adapter's module from the class name ("ArcHalo" -> archalo); name it."""
        info = PostgresAdapter.get_adapter_run_info(config)
        return AdapterTrackingRelationInfo(
            adapter_name=cls.type(), base_adapter_version=info.base_adapter_version,
            adapter_version=__version__.version, model_adapter_details=info.model_adapter_details,
        )

    def submit_python_job(self, parsed_model: dict, compiled_code: str) -> AdapterResponse:
        """Called by the `table` materialization's `statement('main', language='python')`."""
        rows = python_model.run(self, parsed_model, compiled_code)
        return AdapterResponse(_message=f"INSERT {rows}", code="INSERT", rows_affected=rows)

    @available
    def apply_migrations(self) -> str:
        """on-run-start, before every other hook: pending migrations/ (arc_halo.migrations)."""
        return schema_changes.apply_migrations(self)

    @available
    def apply_online_ddl(self, steps: list[dict]) -> int:
        """operational_table's changes to an existing table, without stalling its writers (arc_halo.online_ddl)."""
        return schema_changes.apply_online_ddl(self, steps)
