"""One exception tree for problems a user can fix (psycopg's shape: one root, a few kinds).

Every message is one line that names what is wrong and what to do; the CLI prints it as
`arc-halo: error: <message>` and exits with code 2. Catch `ArcHaloError` to catch them all.

    ArcHaloError
    ├── ConfigurationError        environment, targets, installed tools
    │   └── DatabaseUnavailableError   host unreachable, database missing, login refused
    ├── InvalidInputError         a value given by the caller (also a ValueError)
    ├── NotFoundError             an id or name that names nothing (also a LookupError)
    ├── ReadOnlyConnectionError   a write sent to a read replica (or a read-only connection)
    └── IntegrityError            stored data disagrees with its checksum, shape or constraints
"""

from __future__ import annotations

import psycopg


class ArcHaloError(Exception):
    """The root: a problem a user can fix, with a one-line explanation of what to fix."""


class ConfigurationError(ArcHaloError):
    """The environment is not set up for what was asked: a variable, a target, a tool or a server."""


class DatabaseUnavailableError(ConfigurationError):
    """The database cannot be reached or entered; the message says whether the host, the database
    name or the login is wrong."""


class InvalidInputError(ArcHaloError, ValueError):
    """A value given by the caller is malformed or out of range; nothing was changed because of it.
    Also a ValueError, so code written against the standard exceptions keeps working."""


class NotFoundError(ArcHaloError, LookupError):
    """An id or name names nothing stored (a model, a session, a checkpoint, a tensor)."""


class ReadOnlyConnectionError(ArcHaloError):
    """A write was sent over a read-only connection (`arc_halo.replica.connect_replica`, a hot standby or
    a read replica); nothing was written. Writes go to the primary (`arc_halo.db.connect`)."""


class IntegrityError(ArcHaloError):
    """Stored data is not what it claims to be (a checksum, dtype or shape mismatch, missing or surplus
    chunks), or a write broke a constraint; the message names the constraint or the damaged object."""


def describe_connection_failure(exc: psycopg.OperationalError | None, target: str, label: str = "database",
                                attempts: str = "") -> DatabaseUnavailableError:
    """Turn libpq's connection error into one line that says which part of the connection is wrong:
    the host (nothing answered), the database name (the host answered: no such database) or the login.
    `label` names the target ("neon"); `attempts` says how often it was tried ("after 3 attempts of 15s")."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(target)
    except psycopg.Error:
        info = {}
    host = info.get("host") or "localhost (default socket)"
    port = info.get("port") or "5432"
    database = info.get("dbname") or info.get("user") or "(default)"
    text = str(exc or "").strip()
    lowered = text.lower()
    # libpq: 'connection to server at "h", port 1 failed: Connection refused' + a hint line; keep the reason
    reasons = [line.rsplit("failed:", 1)[1].strip() for line in text.splitlines() if "failed:" in line]
    detail = (reasons[-1] if reasons and reasons[-1] else text.splitlines()[-1].strip()) if text else "no answer"
    tried = f" {attempts}" if attempts else ""
    if "does not exist" in lowered and "database" in lowered:
        message = (f"{label} host {host} (port {port}) answered, but database {database!r} does not exist there: "
                   f"check the database name, or create it")
    elif "authentication" in lowered or ("role" in lowered and "does not exist" in lowered):
        message = f"{label} host {host} (port {port}) refused the login to database {database!r}: {detail}; check the user and password"
    else:
        message = (f"cannot reach {label} host {host} (port {port}){tried}: {detail}; check the host and port, "
                   f"and that the server runs")
    return DatabaseUnavailableError(message)
