"""Which tenant a transaction acts as: the one place the library names the setting the row-level security
policies and every tenant_id default read (dbt names it once too, the project variable `tenant_setting`;
tests/integration/test_house_shape.py holds the two equal).

A tenant is set per transaction (`set_config(..., true)`), never per session: a session setting would
outlive the transaction and reach the next borrower of a pooled or PgBouncer server connection. The
connections that do it, and the one way to ask a connection for its tenant (`db.tenant_of`), are in
arc_halo.db. This module imports nothing of the library's, so every other module (errors included) may
use it.
"""

from __future__ import annotations

SETTING = "app.tenant_id"

# SQL: the caller's tenant, 'default' when none is set; the tenant_id columns' default expression.
CURRENT_TENANT = f"coalesce(nullif(current_setting('{SETTING}', true), ''), 'default')"

# SQL: the one statement that makes the current transaction act as a tenant (one parameter, the name).
SET_TENANT = f"select set_config('{SETTING}', {{}}, true)"

# What a user who was refused for acting as no tenant should do, for messages.
HOW_TO_ACT_AS_A_TENANT = ("db.connect(tenant=...) or db.tenant(conn, ...) in Python, "
                          f"PGOPTIONS='-c {SETTING}=<tenant>' for arc-halo")
