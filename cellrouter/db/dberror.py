"""What a database error means: the cell is unreachable, a retry may succeed, or neither.

The one place that knows the drivers' error codes (PyMySQL, psycopg, sqlite3):

* :func:`is_connection_error`: an allow-list of failures that say the server
  cannot be reached or dropped the connection. Anything else (unknown column,
  bad collation, constraint violations, bugs) means the server answered.
* :func:`is_timeout`: of those, the ones where the server did not answer in
  time (connect, read or write timeout), as opposed to a dropped connection.
* :func:`is_retryable`: the transaction lost a race with a concurrent one
  (deadlock, lock wait, serialization failure, SQLite busy) and may simply be
  run again.
* :func:`describe`: one masked line for logs and error messages.
"""

from __future__ import annotations

import sqlalchemy as sa

from cellrouter import exception
from cellrouter.url import mask_url

__all__ = [
    "describe",
    "is_connection_error",
    "is_missing_database",
    "is_retryable",
    "is_timeout",
]

#: Longest driver message :func:`describe` keeps.
MAX_MESSAGE = 200

#: MySQL/MariaDB codes of an unreachable server or a lost connection: client 2002 (socket),
#: 2003 (TCP), 2005 (unknown host), 2006 (gone away), 2013 (lost during query), 2055
#: (lost at handshake); server 1040 (too many connections), 1053 (shutting down), 1927
#: (connection killed).
_MYSQL_CONNECTION_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2005, 2006, 2013, 2055})
#: PostgreSQL SQLSTATEs besides class 08 (connection exception): admin shutdown, crash
#: shutdown, cannot connect now (starting up or shutting down).
_PG_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03"})
#: sqlite3 messages of a database that cannot be reached.
_SQLITE_CONNECTION_TEXTS = ("unable to open database file",)

#: MariaDB/MySQL: 1213 deadlock, 1205 lock wait timeout, 1020 record changed since
#: last read (MariaDB >= 11.6 snapshot isolation).
_MYSQL_RETRY_CODES = frozenset({1020, 1205, 1213})
#: PostgreSQL: serialization failure, deadlock detected.
_PG_RETRY_STATES = frozenset({"40001", "40P01"})
#: sqlite3 messages of a lock held by another connection.
_SQLITE_RETRY_TEXTS = ("database is locked", "database table is locked")

#: OSErrors about paths, never about a server: a bug or a configuration error.
_FILESYSTEM_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)


def _mysql_code(orig: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL/mysqlclient error (None for other drivers)."""
    args = orig.args
    return args[0] if args and type(args[0]) is int else None


def _sqlstate(orig: BaseException) -> str | None:
    """The SQLSTATE of a psycopg (``sqlstate``) or psycopg2 (``pgcode``) error."""
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _is_psycopg(orig: BaseException) -> bool:
    """True for psycopg (3) and psycopg2 errors, whose server errors all carry a SQLSTATE."""
    return type(orig).__module__.partition(".")[0] in ("psycopg", "psycopg2")


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` says the database is unreachable or dropped the connection.

    An allow-list: connections SQLAlchemy invalidated, pool timeouts, socket
    errors, :class:`~cellrouter.exception.CellUnavailable`, the MySQL client and
    server codes, PostgreSQL SQLSTATE class 08 and 57P01-57P03 (and libpq
    failures, which carry no SQLSTATE), and SQLite's "unable to open database
    file". Every other error means the server answered, so a schema drift or a
    bug in one cell never makes it look down.
    """
    if isinstance(exc, exception.CellUnavailable | sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    if isinstance(exc, OSError):  # socket errors, TimeoutError, ConnectionError
        return not isinstance(exc, _FILESYSTEM_ERRORS)
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if orig is None:
        return False
    code = _mysql_code(orig)
    if code is not None:
        return code in _MYSQL_CONNECTION_CODES
    state = _sqlstate(orig)
    if state is not None:
        return state.startswith("08") or state in _PG_CONNECTION_STATES
    if _is_psycopg(orig):  # no SQLSTATE: raised by libpq itself, not by the server
        return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
    text = str(orig)
    return any(message in text for message in _SQLITE_CONNECTION_TEXTS)


#: Driver texts of a connect/read/write timeout (PyMySQL wraps socket.timeout's
#: "timed out"; libpq says "timeout expired" or "Connection timed out").
_TIMEOUT_TEXTS = ("timed out", "timeout expired")


#: MariaDB/MySQL: unknown database.
_MYSQL_UNKNOWN_DATABASE = 1049
#: PostgreSQL: invalid_catalog_name (libpq reports it at connect time as text only).
_PG_UNKNOWN_DATABASE = "3D000"


def is_missing_database(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) says the database does not exist on its server.

    MariaDB "Unknown database" (1049); PostgreSQL ``database "x" does not exist``
    (3D000). SQLite creates a missing file: it never says so.
    """
    for error in (exc, exc.__cause__):
        if not isinstance(error, sa.exc.DBAPIError) or error.orig is None:
            continue
        orig = error.orig
        code = _mysql_code(orig)
        if code is not None:
            return code == _MYSQL_UNKNOWN_DATABASE
        if _sqlstate(orig) == _PG_UNKNOWN_DATABASE:
            return True
        if _is_psycopg(orig) and 'database "' in str(orig) and "does not exist" in str(orig):
            return True
    return False


def is_timeout(exc: BaseException) -> bool:
    """True when ``exc`` says a database did not answer in time (not: closed the connection)."""
    inner = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    for error in (inner, inner.__cause__, inner.__context__):
        if isinstance(error, TimeoutError):
            return True
    text = str(inner).lower()
    return any(message in text for message in _TIMEOUT_TEXTS)


def is_retryable(exc: BaseException) -> bool:
    """True for errors that abort a transaction only because of a concurrent one."""
    if not isinstance(exc, sa.exc.DBAPIError) or exc.connection_invalidated or exc.orig is None:
        return False
    orig = exc.orig
    if _mysql_code(orig) in _MYSQL_RETRY_CODES:
        return True
    if _sqlstate(orig) in _PG_RETRY_STATES:
        return True
    text = str(orig).lower()
    return any(message in text for message in _SQLITE_RETRY_TEXTS)


def describe(exc: BaseException) -> str:
    """``"ErrorClass: message"`` on one masked line, for logs and error messages.

    For a SQLAlchemy DB-API wrapper it names the driver's error and message
    (SQLAlchemy's text adds the SQL statement and a link). The message is the
    first line, masked (:func:`~cellrouter.url.mask_url`) before it is cut to
    :data:`MAX_MESSAGE` characters so no cut can expose part of a password.
    """
    if isinstance(exc, exception.Unavailable) and exc.__cause__ is not None:
        return describe(exc.__cause__)  # the driver's own words, not our wrapper's
    inner = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    lines = str(inner).strip().splitlines()
    message = mask_url(lines[0].strip())[:MAX_MESSAGE] if lines else ""
    name = type(inner).__name__
    return f"{name}: {message}" if message else name
