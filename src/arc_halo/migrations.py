"""Versioned SQL migrations in `migrations/`: the changes the operational_table materialization refuses
to make by itself (a changed type, a renamed or dropped column, a changed key, fixing rows).

A file is `<version>_<what_it_does>.sql` (version: ASCII digits, e.g. a UTC timestamp 20261128233000;
any other `.SQL` spelling or digits are refused, not skipped). Pending files are applied in version
order, each in its own transaction unless its first lines hold `-- arc-halo: no-transaction` (for CREATE
INDEX CONCURRENTLY; then each statement runs on its own and the file must be safe to re-run). A
transactional file may not hold its own BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: it is refused before any
file runs, and should one slip through, the failure says what stayed applied. Every applied file is
recorded in `arc_halo_meta.schema_migrations` with the SHA-256 of its text: a recorded file that
changed, disappeared or was renamed is refused by name, and applying twice does nothing. A database whose schema holds no table yet is built from the contracts, which
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from arc_halo import retries
from arc_halo.errors import AppliedMigrationChanged, MigrationError, first_line
from arc_halo.rows import one_value

FOLDER = "migrations"
LEDGER_SCHEMA = "arc_halo_meta"
LEDGER_TABLE = "schema_migrations"
FILE_NAME = re.compile(r"^(?P<version>[0-9]+)_(?P<what>[a-z0-9_]+)\.sql$")
MAX_VERSION = 2**63 - 1  # the ledger's bigint
NO_TRANSACTION = re.compile(r"^\s*--\s*arc-halo:\s*no-transaction\s*$", re.MULTILINE)
# A migration waits at most this long for a lock, then steps back and retries: it never queues in front
# of the application's writers behind a long query for longer than this.
LOCK_TIMEOUT = "1s"
LOCK_ATTEMPTS = 30
# Only migrations may hold this lock: two builds never apply the same file twice.
ADVISORY_LOCK_KEY = 0x4152_4348_4D49_4752  # "ARCHMIGR"


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
    """The migration files in version order; a misnamed .sql file (also `.SQL`, a version in other than
    ASCII digits) or a repeated version is refused."""
    if not directory.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() != ".sql" or not path.is_file():
            continue
        if path.suffix != ".sql":
            raise MigrationError(f"{FOLDER}/{path.name}: a migration's name ends in lowercase .sql (it would be "
                                 f"skipped): rename it to {path.stem}.sql")
        match = FILE_NAME.match(path.name)
        if match is None:
            unicode_version = re.match(r"^(\d+)_", path.name)
            if unicode_version:
                raise MigrationError(f"{FOLDER}/{path.name}: write the version {unicode_version[1]!r} in ASCII digits "
                                     f"0-9 (it reads as {int(unicode_version[1])} but does not sort or show as such)")
            raise MigrationError(
                f"{FOLDER}/{path.name}: name migrations <version>_<what_it_does>.sql, e.g. "
                f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_widen_models_vocab_size.sql (lowercase, digits, _)"
            )
        version = int(match["version"])
        if version > MAX_VERSION:
            raise MigrationError(f"{FOLDER}/{path.name}: version {version} is larger than {MAX_VERSION}; use a UTC "
                                 f"timestamp such as {time.strftime('%Y%m%d%H%M%S', time.gmtime())}")
        if version in found:
            raise MigrationError(f"{FOLDER}/{path.name} and {FOLDER}/{found[version].file_name} share version {version}")
        found[version] = Migration(version, path.name, path.read_text())
    return [found[version] for version in sorted(found)]


# Statements that begin, end or split a transaction, by their first word (PREPARE only as PREPARE
# TRANSACTION). In a file run inside one transaction, a COMMIT commits part of it, unrecorded.
_TRANSACTION_CONTROL = {"begin", "commit", "rollback", "abort", "end", "start", "savepoint", "release"}
_WORD = re.compile(r"[^\W\d][\w$]*")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")


def _statements(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line, first two words lowercased) of each statement of `text`, split as psql splits it: a
    semicolon inside a comment (nested /* */ too), a quoted string (E'' with backslash escapes), a quoted
    identifier, a dollar-quoted body, parentheses, or the BEGIN ... END of a CREATE FUNCTION/PROCEDURE
    in SQL-standard form (BEGIN ATOMIC) does not end a statement. A quoted token counts as word ''."""
    position, length, line = 0, len(text), 1
    words: list[str] = []
    start_line, depth, parens = 1, 0, 0

    def token(word: str, end: int) -> None:
        nonlocal position, line, start_line
        if not words:
            start_line = line
        words.append(word)
        line += text.count("\n", position, end)
        position = end

    def skip(end: int) -> None:
        nonlocal position, line
        line += text.count("\n", position, end)
        position = end

    def follows_word() -> bool:
        return position > 0 and (text[position - 1].isalnum() or text[position - 1] in "_$")

    while position < length:
        character = text[position]
        if text.startswith("--", position):
            newline = text.find("\n", position)
            skip(length if newline < 0 else newline)
        elif text.startswith("/*", position):
            nesting, cursor = 1, position + 2
            while nesting and cursor < length:
                step = text[cursor:cursor + 2]
                nesting += 1 if step == "/*" else -1 if step == "*/" else 0
                cursor += 2 if step in ("/*", "*/") else 1
            skip(cursor)
        elif character in "'\"":
            escapes = character == "'" and words[-1:] in (["e"],) and text[position - 1] in "eE"
            cursor = position + 1
            while cursor < length:
                if escapes and text[cursor] == "\\":
                    cursor += 2
                elif text.startswith(character * 2, cursor):
                    cursor += 2
                elif text[cursor] == character:
                    break
                else:
                    cursor += 1
            token("", min(cursor + 1, length))
        elif character == "$" and not follows_word() and (tag := _DOLLAR_TAG.match(text, position)):
            end = text.find(tag[0], tag.end())
            token("", length if end < 0 else end + len(tag[0]))
        elif (word := _WORD.match(text, position)) and not follows_word():
            lowered = word[0].lower()
            token(lowered, word.end())
            # psql's rule: only in CREATE [OR REPLACE] FUNCTION|PROCEDURE, outside parentheses
            kind = words[3:4] if words[1:3] == ["or", "replace"] else words[1:2]
            if words[0] == "create" and kind in (["function"], ["procedure"]) and parens == 0:
                if lowered == "begin" or (lowered == "case" and depth):
                    depth += 1
                elif lowered == "end" and depth:
                    depth -= 1
        elif character == ";" and depth == 0:
            if words:
                yield start_line, words[:2]
            words, depth, parens = [], 0, 0
            skip(position + 1)
        elif character.isspace():
            skip(position + 1)
        else:
            parens += 1 if character == "(" else -1 if character == ")" and parens else 0
            token("", position + 1) if not words else skip(position + 1)
    if words:
        yield start_line, words[:2]


def check_transactional(migration: Migration) -> None:
    """Refuse transaction control in a migration that runs inside one transaction, before anything runs."""
    if not migration.in_transaction:
        return
    for line, words in _statements(migration.text):
        if words and (words[0] in _TRANSACTION_CONTROL or words == ["prepare", "transaction"]):
            shown = " ".join(words if words[0] in ("start", "prepare", "release") else words[:1]).upper()
            raise MigrationError(
                f"{FOLDER}/{migration.file_name}, line {line}: {shown} controls the transaction, but "
                f"the file runs inside one (a COMMIT there would apply part of it, unrecorded): remove it, or put "
                f"`-- arc-halo: no-transaction` in the file's first lines to run it statement by statement")


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
    exists = one_value(conn.execute("select to_regclass(%s) is not null", (f"{LEDGER_SCHEMA}.{LEDGER_TABLE}",)))
    if not exists:
        conn.execute(sql.SQL(LEDGER_DDL).format(schema=sql.Identifier(LEDGER_SCHEMA), ledger=_ledger()))


def recorded(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (file name, checksum) of every migration recorded in the database."""
    rows = conn.execute(sql.SQL("select version, file_name, checksum from {} order by version").format(_ledger()))
    return {version: (file_name, checksum) for version, file_name, checksum in rows}


def verify(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> list[Migration]:
    """The pending migrations, after checking that every applied one is still there, unchanged and under
    its name (a renamed one, found by its checksum, is named)."""
    by_version = {migration.version: migration for migration in migrations}
    by_checksum = {migration.checksum: migration for migration in migrations}
    for version, (file_name, checksum) in applied.items():
        migration = by_version.get(version)
        if migration is None or migration.file_name != file_name:
            moved = by_checksum.get(checksum)
            if moved is not None:
                raise AppliedMigrationChanged(
                    f"migration {file_name} is applied to this database but was renamed to {FOLDER}/{moved.file_name}: "
                    f"rename it back (applied migrations are never renamed; a new change goes in a new file)")
            raise AppliedMigrationChanged(
                f"migration {file_name} is applied to this database but {FOLDER}/{file_name} is missing"
                + (f" ({FOLDER}/{migration.file_name} holds its version now)" if migration else "")
                + ": restore it (applied migrations are never deleted or renamed)"
            )
        if migration.checksum != checksum:
            raise AppliedMigrationChanged(
                f"migration {migration.file_name} was changed after it was applied to this database "
                f"(checksum {checksum[:12]}, file now {migration.checksum[:12]}): restore the applied text and "
                f"put the new change in a new file in {FOLDER}/"
            )
    return [migration for migration in migrations if migration.version not in applied]


def _schema_is_empty(conn: psycopg.Connection, schema: str) -> bool:
    return bool(one_value(conn.execute(
        """select not exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                              where n.nspname = %s and c.relkind in ('r', 'p'))""",
        (schema,),
    )))


def _record(conn: psycopg.Connection, migration: Migration, baseline: bool = False) -> None:
    conn.execute(
        sql.SQL("insert into {} (version, file_name, checksum, baseline) values (%s, %s, %s, %s)").format(_ledger()),
        (migration.version, migration.file_name, migration.checksum, baseline),
    )


def _failure(migration: Migration, exc: BaseException, detail: str) -> MigrationError:
    return MigrationError(f"migration {migration.file_name} failed: {first_line(exc)} ({detail})")


class _EndedItsTransaction(Exception):
    """The file's own statements ended the migration's transaction (a COMMIT the check did not see)."""


def _run_in_open_transaction(conn: psycopg.Connection, migration: Migration) -> None:
    """Run the file's text in the transaction `conn` has open, and make sure that transaction is still
    the one open afterwards, failed or not: otherwise the statements before the file's own COMMIT are
    applied, and the caller must not say that nothing was."""
    try:
        conn.execute(migration.text.encode())
    except psycopg.Error as exc:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:  # ours failed, or ended
            raise _EndedItsTransaction(first_line(exc)) from exc
        raise
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        raise _EndedItsTransaction("it ended the transaction it was run in")


def _apply_in_transaction(conn: psycopg.Connection, migration: Migration, schema: str) -> None:
    try:
        for attempt in retries.attempts(psycopg.errors.LockNotAvailable, tries=LOCK_ATTEMPTS, first_delay=0.2,
                                        max_delay=5.0):
            with attempt, conn.transaction():
                conn.execute("select set_config('search_path', %s, true), set_config('lock_timeout', %s, true)",
                             (schema, LOCK_TIMEOUT))
                _run_in_open_transaction(conn, migration)
                _record(conn, migration)
    except _EndedItsTransaction as exc:
        raise _failure(migration, exc, "its own transaction control committed the statements before it, which "
                                       "stay applied, unrecorded: undo them by hand, or make the file safe to "
                                       "re-run and mark it `-- arc-halo: no-transaction`") from None
    except psycopg.errors.LockNotAvailable as exc:
        raise _failure(migration, exc, f"its locks stayed taken for {LOCK_ATTEMPTS} attempts; nothing of "
                                       "it was applied, migrate again when the long queries are done") from None
    except psycopg.Error as exc:
        raise _failure(migration, exc, "nothing of it was applied") from None


def _apply_statement_by_statement(conn: psycopg.Connection, migration: Migration, schema: str) -> None:
    """For CONCURRENTLY: each statement commits by itself, so a failure leaves the earlier ones applied."""
    import sqlparse

    statements = [s for s in sqlparse.split(migration.text) if sqlparse.format(s, strip_comments=True).strip()]
    previous = one_value(conn.execute("select current_setting('search_path')"))
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
        for migration in pending:  # before any runs: a refused file leaves the database as it was
            check_transactional(migration)
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
