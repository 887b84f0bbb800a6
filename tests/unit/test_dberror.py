"""cellrouter.db.dberror: connection errors (an allow-list), retryable errors, descriptions.

Uses the drivers' real exception classes, and real failing connections where
no server is needed (nothing listens on port 1; SQLite in a missing directory).
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import psycopg
import psycopg.errors
import pymysql
import pytest
import sqlalchemy as sa

from cellrouter import exception
from cellrouter.db import dberror


def operational(orig: BaseException) -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("SELECT 1", {}, orig)


def mysql(code: int, message: str = "x") -> sa.exc.DBAPIError:
    return operational(pymysql.err.OperationalError(code, message))


def pg(sqlstate: str) -> sa.exc.DBAPIError:
    return operational(psycopg.errors.lookup(sqlstate)("x"))


class _Psycopg2Error(Exception):
    """psycopg2 names the SQLSTATE ``pgcode``."""

    def __init__(self, pgcode: str) -> None:
        super().__init__(pgcode)
        self.pgcode = pgcode


CONNECTION_ERRORS = [
    *(mysql(code) for code in (2002, 2003, 2005, 2006, 2013, 2055, 1040, 1053, 1927)),
    *(pg(state) for state in ("08000", "08001", "08006", "57P01", "57P02", "57P03")),
    operational(_Psycopg2Error("08006")),
    operational(psycopg.OperationalError("connection failed: Connection refused")),
    operational(sqlite3.OperationalError("unable to open database file")),
    sa.exc.OperationalError(
        "SELECT 1", {}, sqlite3.OperationalError("x"), connection_invalidated=True
    ),
    sa.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    sa.exc.DisconnectionError("connection dropped"),
    TimeoutError(),
    ConnectionRefusedError(),
    socket.gaierror(-2, "Name or service not known"),
    OSError(113, "No route to host"),
    exception.CellUnavailable(cell="c", reason="r"),
]

ANSWERED_ERRORS = [
    mysql(1054, "Unknown column 'no_such_column' in 'SELECT'"),
    mysql(1253, "COLLATION 'utf8mb4_nopad_bin' is not valid for CHARACTER SET 'utf8mb3'"),
    mysql(1146, "Table 'nova.instances' doesn't exist"),
    mysql(1213, "Deadlock found"),
    mysql(1205, "Lock wait timeout exceeded"),
    mysql(3024, "Query execution was interrupted, maximum statement execution time exceeded"),
    sa.exc.IntegrityError("INSERT", {}, pymysql.err.IntegrityError(1062, "Duplicate entry")),
    *(pg(state) for state in ("42703", "42P01", "40001", "40P01", "55P03", "57014")),
    sa.exc.DataError("SELECT", {}, psycopg.DataError("cannot dump")),
    operational(_Psycopg2Error("42703")),
    operational(sqlite3.OperationalError("no such column: no_such_column")),
    operational(sqlite3.OperationalError("no such table: instances")),
    operational(sqlite3.OperationalError("database is locked")),
    sa.exc.InterfaceError("SELECT", {}, sqlite3.InterfaceError("Error binding parameter 0")),
    FileNotFoundError(2, "No such file or directory"),
    exception.InstanceNotFound(uuid="u", cell="c"),
    ValueError("bug"),
    KeyError("bug"),
]


@pytest.mark.parametrize("error", CONNECTION_ERRORS, ids=repr)
def test_connection_errors(error: BaseException) -> None:
    assert dberror.is_connection_error(error) is True


@pytest.mark.parametrize("error", ANSWERED_ERRORS, ids=repr)
def test_errors_of_a_server_that_answered_are_not_connection_errors(error: BaseException) -> None:
    assert dberror.is_connection_error(error) is False


def _error_of(url: str, sql: str = "SELECT 1") -> sa.exc.DBAPIError:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    except sa.exc.DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{url}: {sql} did not fail")


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://nova:pw@127.0.0.1:1/nova?connect_timeout=5",
        "postgresql+psycopg://nova:pw@127.0.0.1:1/nova?connect_timeout=5",
        "sqlite:////nonexistent-cellrouter-dir/cell.db",
    ],
)
def test_real_unreachable_databases_are_connection_errors(url: str) -> None:
    assert dberror.is_connection_error(_error_of(url)) is True


def test_a_real_query_error_is_not_a_connection_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cell.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE instances (id INTEGER)"))
    engine.dispose()
    error = _error_of(url, "SELECT no_such_column FROM instances")
    assert isinstance(error, sa.exc.OperationalError)
    assert dberror.is_connection_error(error) is False
    assert dberror.is_connection_error(_error_of(url, "SELECT 1 FROM no_such_table")) is False


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (pymysql.err.OperationalError(1213, "Deadlock found"), True),
        (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), True),
        (pymysql.err.OperationalError(1020, "Record has changed since last read"), True),
        (pymysql.err.IntegrityError(1062, "Duplicate entry"), False),
        (pymysql.err.OperationalError(2003, "Can't connect"), False),
        (psycopg.errors.DeadlockDetected("x"), True),
        (psycopg.errors.SerializationFailure("x"), True),
        (psycopg.errors.UniqueViolation("x"), False),
        (_Psycopg2Error("40P01"), True),
        (_Psycopg2Error("23505"), False),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("database table is locked"), True),
        (sqlite3.OperationalError("no such table: x"), False),
    ],
)
def test_is_retryable(orig: BaseException, expected: bool) -> None:
    assert dberror.is_retryable(operational(orig)) is expected
    assert dberror.is_retryable(orig) is False  # only wrapped DB-API errors
    invalidated = sa.exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=True)
    assert dberror.is_retryable(invalidated) is False  # a lost connection: not a lost race


def test_describe_names_the_drivers_error_on_one_masked_line() -> None:
    error = sa.exc.OperationalError(
        "SELECT * FROM t WHERE secret = %(p)s",
        {"p": "hunter2"},
        pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'db7'"),
    )
    assert dberror.describe(error) == (
        "OperationalError: (2003, \"Can't connect to MySQL server on 'db7'\")"
    )  # neither SQLAlchemy's statement and parameters nor its link
    psycopg_error = operational(psycopg.errors.UndefinedColumn('column "x" does not exist\nLINE 1'))
    assert dberror.describe(psycopg_error) == 'UndefinedColumn: column "x" does not exist'
    error = RuntimeError("cannot reach mysql+pymysql://nova:hunter2@db/nova?password=pw2\nnext")
    assert dberror.describe(error) == (
        "RuntimeError: cannot reach mysql+pymysql://nova:****@db/nova?password=****"
    )
    assert dberror.describe(RuntimeError()) == "RuntimeError"
    assert dberror.describe(RuntimeError("\n  \n")) == "RuntimeError"
    assert dberror.describe(exception.CellUnavailable(cell="c1", reason="r")).startswith(
        "CellUnavailable: Cell c1 is unavailable"
    )


def test_describe_masks_before_it_shortens() -> None:
    assert len(dberror.describe(RuntimeError("x" * 1000))) == len("RuntimeError: ") + 200
    # The password would straddle the cut: masked first, so no part of it is left.
    text = "x" * 180 + " mysql://nova:hunter2hunter2@db/nova"
    described = dberror.describe(RuntimeError(text))
    assert "hunt" not in described and len(described) == len("RuntimeError: ") + 200
