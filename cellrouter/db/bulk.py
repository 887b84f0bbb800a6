"""Set-based writes shared by the operator verbs: insert-ignore, IN chunks, retries, cell errors.

Operator commands (``discover_hosts``, ``map_instances``) may run in several
processes at once. They never check-then-insert row by row: they insert a
whole batch with the backend's "insert, skip duplicates" statement, learn
which rows they really inserted, and retry a transaction the database
aborted to break a deadlock.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from cellrouter import exception
from cellrouter.db import dberror

__all__ = [
    "IN_CHUNK",
    "cell_unavailable",
    "chunks",
    "existing_keys",
    "insert_ignore",
    "retry_on_deadlock",
]

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Values per IN list: far below every backend's bound-parameter limit.
IN_CHUNK = 500


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_ignore_stmt(dialect: str, table: sa.Table) -> sa.Insert:
    # Dialect modules are imported here: the PostgreSQL one alone adds a tenth
    # of a second to every cellrouter-manage start.
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        return mysql.insert(table).prefix_with("IGNORE")
    raise exception.UnsupportedBackend(
        backend=dialect, what="insert-ignore writes", supported="sqlite, postgresql, mysql, mariadb"
    )


def existing_keys(conn: sa.Connection, key: sa.Column[Any], values: Sequence[Any]) -> set[Any]:
    """Which of ``values`` are already in ``key``'s column (chunked IN reads)."""
    found: set[Any] = set()
    for chunk in chunks(values):
        found.update(conn.execute(sa.select(key).where(key.in_(chunk))).scalars())
    return found


def insert_ignore(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key: sa.Column[Any],
    *,
    skip_existing: bool = False,
) -> list[Any]:
    """Insert ``rows``, silently skipping those that hit a unique key; return what was inserted.

    The result lists the ``key`` values of the rows this statement really
    inserted (not those another transaction inserted first), so a caller
    knows exactly what it created even when racing other processes. Uses
    ``INSERT ... RETURNING`` in multi-row batches where the backend has it
    (SQLite >= 3.35, MariaDB >= 10.5, PostgreSQL); elsewhere one statement
    per row, judged by its rowcount.

    On MariaDB this is ``INSERT IGNORE``, which also skips rows failing for
    other reasons (e.g. a foreign key whose parent was just deleted); callers
    only pass rows they built from existing parents.

    ``skip_existing``: first drop the rows whose key already exists, where a
    skipped duplicate would still use up an autoincrement value (MariaDB,
    PostgreSQL) and lock the existing row. SQLite burns no value and skips
    duplicates faster by itself, so it is not asked.
    """
    if skip_existing and rows and conn.dialect.name != "sqlite":
        present = existing_keys(conn, key, [row[key.name] for row in rows])
        rows = [row for row in rows if row[key.name] not in present]
    if not rows:
        return []
    stmt = _insert_ignore_stmt(conn.dialect.name, table)
    if conn.dialect.insert_returning and conn.dialect.use_insertmanyvalues:
        return list(conn.execute(stmt.returning(key), list(rows)).scalars())
    inserted = []
    for row in rows:
        if conn.execute(stmt, dict(row)).rowcount == 1:
            inserted.append(row[key.name])
    return inserted


def retry_on_deadlock(
    fn: Callable[..., T], *args: Any, attempts: int = 20, base_delay: float = 0.01
) -> T:
    """``fn(*args)`` (one whole transaction), run again when the database aborted it.

    ``fn`` must open and commit its own transaction, so a retry starts over
    from a clean state. Backs off with jitter; the last error propagates.
    ``fn`` runs at most ``attempts`` times, and always at least once.
    """
    for attempt in range(1, attempts):
        try:
            return fn(*args)
        except sa.exc.DBAPIError as exc:
            if not dberror.is_retryable(exc):
                raise
            delay = base_delay * min(2 ** (attempt - 1), 50) * (0.5 + random.random())
            LOG.debug("transaction aborted by a concurrent one (attempt %d), retrying", attempt)
            time.sleep(delay)
    return fn(*args)


def cell_unavailable(identity: str, exc: Exception) -> exception.CellUnavailable:
    """The error an operator verb raises when a cell's database fails (message masked)."""
    return exception.CellUnavailable(cell=identity, reason=dberror.describe(exc))
