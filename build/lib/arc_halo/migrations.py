"""Versioned SQL migrations in `migrations/`: the changes the operational_table materialization refuses
to make by itself (a changed type, a renamed or dropped column, a changed key, fixing rows).

A file is `<version>_<what_it_does>.sql` (version: digits, e.g. a UTC timestamp 20261128233000).
Pending files are applied in version order, each in its own transaction unless its first lines hold
`-- arc-halo: no-transaction` (for CREATE INDEX CONCURRENTLY; then each statement runs on its own and the
file must be safe to re-run). Every applied file is recorded in `arc_halo_meta.schema_migrations` with
the SHA-256 of its text: a recorded file that changed or disappeared is refused by name, and applying
twice does nothing. A database whose schema holds no table yet is built from the contracts, which
already include every migration: its migrations are recorded as applied without running (a baseline).

Why not dbmate, yoyo or sqitch: dbmate records only versions (content checksums are an open pull
request, amacneil/dbmate#672); yoyo records a hash of the migration's id, not of its text; sqitch
records script hashes but deploys by plan and needs Perl from Debian. None refuses an edited applied
migration, and the build runs this module in-process from dbt's on-run-start, which a separate binary
cannot share a target with as simply.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from arc_halo.errors import ArcHaloError, IntegrityError

FOLDER = "migrations"
LEDGER_SCHEMA = "arc_halo_meta"
LEDGER_TABLE = "schema_migrations"
FILE_NAME = re.compile(r"^(?P<version>\d+)_(?P<what>[a-z0-9_]+)\.sql$")
NO_TRANSACTION = re.compile(r"^\s*--\s*arc-halo:\s*no-transaction\s*$", re.MULTILINE)
# A migration waits at most this long for a lock, then steps back and retries: it never queues in front
# of the application's writers behind a long query for longer than this.
LOCK_TIMEOUT = "1s"
LOCK_ATTEMPTS = 30
# Only migrations may hold this lock: two builds never apply the same file twice.
ADVISORY_LOCK_KEY = 0x4152_4348_4D49_4752  # "ARCHMIGR"


class MigrationError(ArcHaloError):
    """A migration file cannot be applied (misnamed, a repeated version, its SQL failed); the message names it."""


class AppliedMigrationChanged(MigrationError, IntegrityError):
    """A migration recorded as applied is no longer the file in migrations/ (edited or deleted)."""


@dataclass(frozen=True)
class Migration:
    version: int
    file_name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.replace("\r\n", "\n").encode()).hexdigest()

    @property
    def in_transaction(self) -> bool:
        return not NO_TRANSACTION.search(self.text)


@dataclass(frozen=True)
class Outcome:
    applied: list[str]
    baselined: list[str]

    def summary(self) -> str:
        if self.baselined:
            return (f"new database: {len(self.baselined)} migration(s) recorded as applied without running "
                    "(the contracts already include them)")
        if self.applied:
            return f"applied {len(self.applied)} migration(s): {', '.join(self.applied)}"
        return "no pending migrations"


def folder(project: Path) -> Path:
    return project / FOLDER


def discover(directory: Path) -> list[Migration]:
    """The migration files in version order; a misnamed .sql file or a repeated version is refused."""
    if not directory.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"{FOLDER}/{path.name}: name migrations <version>_<what_it_does>.sql, e.g. "
                f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_widen_models_vocab_size.sql (lowercase, digits, _)"
            )
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"{FOLDER}/{path.name} and {FOLDER}/{found[version].file_name} share version {version}")
        found[version] = Migration(version, path.name, path.read_text())
    return [found[version] for version in sorted(found)]


def _ledger() -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(LEDGER_SCHEMA), sql.Identifier(LEDGER_TABLE))


LEDGER_DDL = """
create schema if not exists {schema};
create table if not exists {ledger} (
    version bigint primary key,
    file_name text not null,
    checksum text not null check (checksum ~ '^[0-9a-f]{{64}}$'),
    applied_at timestamptz not null default now(),
    baseline boolean not null default false
);
comment on table {ledger} is
    'Migrations from migrations/ applied to this database (arc-halo db migrate); baseline: recorded without running, because the contracts built the schema.'
"""


def ensure_ledger(conn: psycopg.Connection) -> None:
    exists = conn.execute("select to_regclass(%s) is not null", (f"{LEDGER_SCHEMA}.{LEDGER_TABLE}",)).fetchone()[0]
    if not exists:
        conn.execute(sql.SQL(LEDGER_DDL).format(schema=sql.Identifier(LEDGER_SCHEMA), ledger=_ledger()))


def recorded(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (file name, checksum) of every migration recorded in the database."""
    rows = conn.execute(sql.SQL("select version, file_name, checksum from {} order by version").format(_ledger()))
    return {version: (file_name, checksum) for version, file_name, checksum in rows}


def verify(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> list[Migration]:
    """The pending migrations, after checking that every applied one is still there, unchanged."""
    by_version = {migration.version: migration for migration in migrations}
    for version, (file_name, checksum) in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise AppliedMigrationChanged(
                f"migration {file_name} is applied to this database but {FOLDER}/{file_name} is missing: "
                "restore it (applied migrations are never deleted or renamed)"
            )
        if migration.checksum != checksum:
            raise AppliedMigrationChanged(
                f"migration {migration.file_name} was changed after it was applied to this database "
                f"(checksum {checksum[:12]}, file now {migration.checksum[:12]}): restore the applied text and "
                f"put the new change in a new file in {FOLDER}/"
            )
    return [migration for migration in migrations if migration.version not in applied]


def _schema_is_empty(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute(
        """select not exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                              where n.nspname = %s and c.relkind in ('r', 'p'))""",
        (schema,),
    ).fetchone()[0]


def _record(conn: psycopg.Connection, migration: Migration, baseline: bool = False) -> None:
    conn.execute(
        sql.SQL("insert into {} (version, file_name, checksum, baseline) values (%s, %s, %s, %s)").format(_ledger()),
        (migration.version, migration.file_name, migration.checksum, baseline),
    )


def _failure(migration: Migration, exc: psycopg.Error, detail: str) -> MigrationError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return MigrationError(f"migration {migration.file_name} failed: {first_line} ({detail})")


def _apply_in_transaction(conn: psycopg.Connection, migration: Migration, schema: str) -> None:
    for attempt in range(LOCK_ATTEMPTS):
        try:
            with conn.transaction():
                conn.execute("select set_config('search_path', %s, true), set_config('lock_timeout', %s, true)",
                             (schema, LOCK_TIMEOUT))
                conn.execute(migration.text.encode())
                _record(conn, migration)
            return
        except psycopg.errors.LockNotAvailable as exc:
            if attempt == LOCK_ATTEMPTS - 1:
                raise _failure(migration, exc, f"its locks stayed taken for {LOCK_ATTEMPTS} attempts; nothing of "
                                               "it was applied, migrate again when the long queries are done") from None
            time.sleep(min(0.2 * 2**attempt, 5.0))
        except psycopg.Error as exc:
            raise _failure(migration, exc, "nothing of it was applied") from None


def _apply_statement_by_statement(conn: psycopg.Connection, migration: Migration, schema: str) -> None:
    """For CONCURRENTLY: each statement commits by itself, so a failure leaves the earlier ones applied."""
    import sqlparse

    statements = [s for s in sqlparse.split(migration.text) if sqlparse.format(s, strip_comments=True).strip()]
    previous = conn.execute("select current_setting('search_path')").fetchone()[0]
    conn.execute("select set_config('search_path', %s, false)", (schema,))
    try:
        for number, statement in enumerate(statements, 1):
            try:
                conn.execute(statement.encode())
            except psycopg.Error as exc:
                raise _failure(migration, exc, f"statement {number} of {len(statements)}; the ones before it stay "
                                               "applied, so keep the file safe to re-run (IF NOT EXISTS) and migrate "
                                               "again; drop an index a failed CONCURRENTLY build left INVALID") from None
        _record(conn, migration)
    finally:
        conn.execute("select set_config('search_path', %s, false)", (previous,))


def migrate(conn: psycopg.Connection, directory: Path, schema: str = "public") -> Outcome:
    """Apply the pending migrations in `directory` to the database of `conn` (its `schema` first on the
    search path). Safe to run from several builds at once: they take turns."""
    migrations = discover(directory)
    conn.autocommit = True
    conn.execute("select pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        ensure_ledger(conn)
        applied = recorded(conn)
        pending = verify(migrations, applied)
        if not applied and pending and _schema_is_empty(conn, schema):
            with conn.transaction():
                for migration in pending:
                    _record(conn, migration, baseline=True)
            return Outcome(applied=[], baselined=[migration.file_name for migration in pending])
        for migration in pending:
            if migration.in_transaction:
                _apply_in_transaction(conn, migration, schema)
            else:
                _apply_statement_by_statement(conn, migration, schema)
        return Outcome(applied=[migration.file_name for migration in pending], baselined=[])
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
