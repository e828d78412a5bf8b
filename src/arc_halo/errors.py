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

PostgreSQL's refusals that a user can fix (a value out of range, an unknown id, a missing privilege or
schema) are translated once, by `from_database`: the public calls raise its result through
`@public_call`, and the CLI prints it.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Generator
from typing import Any, ParamSpec, TypeVar, cast

import psycopg

from arc_halo import tenancy
from arc_halo.redaction import redact


class ArcHaloError(Exception):
    """The root: a problem a user can fix, with a one-line explanation of what to fix. The message is
    redacted (`redaction.redact`): a URL or connection string it quotes never shows a credential."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


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


class TensorIntegrityError(IntegrityError):
    """Stored bytes do not match their checksum, dtype or shape, or chunks are missing or surplus."""


class ModelImportError(InvalidInputError):
    """A directory or file is not an importable model (arc_halo.hf); the message says what to fix."""


class BuildFailedError(ArcHaloError):
    """A dbt command the CLI ran failed; dbt's own output above says why."""


class BuildLockBusy(ArcHaloError):
    """Another build holds the build lease and stayed alive for the whole wait."""


class MigrationError(ArcHaloError):
    """A migration file cannot be applied (misnamed, a repeated version, its SQL failed); the message names it."""


class AppliedMigrationChanged(MigrationError, IntegrityError):
    """A migration recorded as applied is no longer the file in migrations/ (edited or deleted)."""


class OnlineDDLError(ArcHaloError):
    """An online schema change step could not be applied; the message names the step and what to do."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


# libpq's own detail of a foreign key violation, and the project's triggers that raise one alike.
_MISSING_KEY = re.compile(r'Key \((?P<columns>.+)\)=\((?P<values>.*)\) is not present in table "(?P<table>[^"]+)"')
# The objects only a build creates: a relation, function, type (vector), schema or column of the schema.
_MISSING_SCHEMA = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedObject,
                   psycopg.errors.UndefinedColumn, psycopg.errors.InvalidSchemaName)
# A caller's value of a type the column or operator does not take.
_WRONG_TYPE = (psycopg.errors.DatatypeMismatch, psycopg.errors.IndeterminateDatatype,
               psycopg.errors.CannotCoerce)
_NOTHING_CHANGED = "nothing was changed"


def from_database(exc: psycopg.Error, login: str | None = None) -> ArcHaloError | None:
    """The ArcHaloError for a refusal of the database that a user can fix, or None when `exc` is not one
    (a fault of arc-halo, or a connection problem for the caller to handle). `login` names the role that
    was refused, when known. The one mapping of psycopg's classes onto this tree."""
    diag = exc.diag
    primary = diag.message_primary or first_line(exc)
    who = f"login {login!r}" if login else "this login"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege) and "row-level security" in primary:
        return ConfigurationError(
            f"row-level security refused a write by {who} ({primary}): the transaction acts as no tenant, or as "
            f"another one; act as the tenant: {tenancy.HOW_TO_ACT_AS_A_TENANT}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return ConfigurationError(
            f"{who} lacks a privilege: {primary}; grant it the role arc_halo_app (`grant arc_halo_app to "
            f"{login or '<login>'}`, which every build grants its privileges), or run this as the schema owner")
    if isinstance(exc, _WRONG_TYPE) or (exc.sqlstate is None and "cannot adapt type" in primary) or (
            isinstance(exc, psycopg.errors.UndefinedFunction)
            and primary.startswith("operator does not exist")):
        return InvalidInputError(f"a value of the wrong type was passed ({primary}); pass ids as UUIDs or text, "
                                 f"numbers as int or float, text as str; {_NOTHING_CHANGED}")
    if isinstance(exc, _MISSING_SCHEMA) or (exc.sqlstate is None and "vector type not found" in primary):
        return ConfigurationError(f"this database has no Arc-Halo schema, or an older one ({primary}): build it "
                                  "first with `arc-halo build` (or `make run`)")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        missing = _MISSING_KEY.search(diag.message_detail or "")
        if missing:
            return NotFoundError(f"no {missing['table']} row with ({missing['columns']}) = ({missing['values']}) "
                                 f"for this tenant: pass the id of an existing one; {_NOTHING_CHANGED}")
        if "does not exist" in primary:  # the project's own checks say which row is missing
            return NotFoundError(f"{primary}; {_NOTHING_CHANGED}")
        if primary.startswith("insert or update"):  # row-level security hides the key from the message
            return NotFoundError(f"refused by constraint {diag.constraint_name}: a row it references does not exist "
                                 f"for this tenant; pass the id of an existing one; {_NOTHING_CHANGED}")
        return IntegrityError(f"refused by constraint {diag.constraint_name}: {primary}; {_NOTHING_CHANGED}")
    if isinstance(exc, psycopg.errors.IntegrityError):
        table = f" on {diag.table_name}" if diag.table_name else ""
        return IntegrityError(f"refused by constraint {diag.constraint_name or '(unnamed)'}{table}: {primary}; "
                              f"see the table's rules with `\\d+ {diag.table_name or '<table>'}` in psql; {_NOTHING_CHANGED}")
    if isinstance(exc, psycopg.DataError):  # also psycopg's own refusals, e.g. a NUL character in text
        return InvalidInputError(f"the database refused a value: {primary}; {_NOTHING_CHANGED}")
    return None


P = ParamSpec("P")
R = TypeVar("R")


def _login_of(conn: object) -> str | None:
    try:
        return conn.info.user if isinstance(conn, psycopg.Connection) else None
    except psycopg.Error:
        return None


def _check_connection(function: Callable[..., object], args: tuple[object, ...],
                      kwargs: dict[str, object]) -> psycopg.Connection[Any]:
    conn = args[0] if args else kwargs.get("conn")
    if not isinstance(conn, psycopg.Connection):
        raise InvalidInputError(f"{function.__name__}() needs a psycopg connection first (db.connect()), "
                                f"got {type(conn).__name__}")
    return conn


def _translated(exc: psycopg.Error, conn: psycopg.Connection[Any]) -> BaseException:
    return from_database(exc, _login_of(conn)) or exc


def public_call(function: Callable[P, R]) -> Callable[P, R]:
    """A public call of the library that takes a connection as its first argument `conn`: anything else
    there is refused, and a refusal of the database that the caller can fix is raised as the ArcHaloError
    `from_database` gives (the psycopg error chained as its cause); any other error as it is. A generator
    (under @contextlib.contextmanager) is translated while it runs, too."""
    if inspect.isgeneratorfunction(function):
        # isgeneratorfunction narrows nothing for mypy: R is a generator here
        generator_function = cast(Callable[P, Generator[Any, Any, Any]], function)

        @functools.wraps(function)
        def generate(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
            conn = _check_connection(function, args, kwargs)
            try:
                return (yield from generator_function(*args, **kwargs))
            except psycopg.Error as exc:
                translated = _translated(exc, conn)
                if translated is exc:
                    raise
                raise translated from exc
        return generate  # type: ignore[return-value]  # R is this generator's type

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        conn = _check_connection(function, args, kwargs)
        try:
            return function(*args, **kwargs)
        except psycopg.Error as exc:
            translated = _translated(exc, conn)
            if translated is exc:
                raise
            raise translated from exc
    return call
