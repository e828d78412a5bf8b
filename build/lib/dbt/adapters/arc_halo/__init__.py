"""dbt adapter `arc_halo` (profile `type: arc_halo`): dbt-postgres plus Python models run in-process.

The same pattern dbt-duckdb and dbt-materialize use: a plugin that depends on `postgres`, so every
postgres macro, materialization and relation applies, with `submit_python_job` added.
"""

from dbt.adapters.arc_halo.connections import ArcHaloConnectionManager, ArcHaloCredentials
from dbt.adapters.arc_halo.impl import ArcHaloAdapter
from dbt.adapters.base import AdapterPlugin
from dbt.include import arc_halo

__all__ = ["ArcHaloAdapter", "ArcHaloConnectionManager", "ArcHaloCredentials", "Plugin"]

Plugin = AdapterPlugin(
    adapter=ArcHaloAdapter,  # type: ignore[arg-type]
    credentials=ArcHaloCredentials,
    include_path=arc_halo.PACKAGE_PATH,
    dependencies=["postgres"],
    project_name="dbt_arc_halo",
)
