"""The real servers functional tests talk to, and throwaway databases on them.

Rule for every ``require_*()``: when the server cannot be reached the test is
skipped on a developer machine, but fails under ``CI=true`` (CI must really
exercise the backends; ``.ci/run`` starts them before running the tests).

Tests never rely on pre-created databases or vhosts: they create uniquely named
ones (see the ``*_db_factory`` fixtures in ``conftest.py``) and drop them again.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

import pytest
import sqlalchemy as sa

__all__ = [
    "MYSQL_HOST",
    "PG_HOST",
    "MEMCACHED_HOST",
    "RABBIT_HOST",
    "REDIS_HOST",
    "create_mysql_database",
    "create_pg_database",
    "create_rabbitmq_vhost",
    "delete_rabbitmq_vhost",
    "drop_mysql_database",
    "drop_pg_database",
    "in_ci",
    "mysql_url",
    "pg_url",
    "rabbit_url",
    "rabbitmq_exchanges",
    "require_mariadb",
    "require_postgresql",
    "require_memcached",
    "require_rabbitmq",
    "require_redis",
    "unavailable",
]


def in_ci() -> bool:
    """True when running under CI (``CI=true``): missing servers are failures there."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(server: str, reason: str) -> None:
    """Skip the current test because ``server`` is down, or fail it under CI."""
    message = f"{server} is not reachable: {reason}"
    if in_ci():
        pytest.fail(
            f"{message} (CI=true: functional tests must not be skipped; "
            ".ci/run is supposed to start this server)",
            pytrace=False,
        )
    pytest.skip(message)


_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,63}$")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"unsafe database name {name!r} (letters, digits, _; max 63)")
    return name


# -- MariaDB -----------------------------------------------------------------------

MYSQL_HOST = os.environ.get("CELLROUTER_TEST_MYSQL_HOST", "127.0.0.1:3306")
# PyMySQL >= 1.2 tries TLS on every new connection (~20 ms each): local tests skip it.
_MYSQL_QUERY = "ssl_disabled=true&charset=utf8mb4"


def mysql_url(database: str) -> str:
    """SQLAlchemy URL of ``database`` on the test MariaDB server."""
    return f"mysql+pymysql://root@{MYSQL_HOST}/{database}?{_MYSQL_QUERY}"


def _admin_engine(url: str) -> sa.Engine:
    """A one-off AUTOCOMMIT engine on a server's maintenance database."""
    return sa.create_engine(
        url,
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )


def admin_execute(url: str, statement: str) -> None:
    """Run one administrative ``statement`` (CREATE/DROP DATABASE) on the server of ``url``."""
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _problem(url: str) -> str | None:
    """Why the server of ``url`` is not usable (None: it answers ``SELECT 1``)."""
    try:
        admin_execute(url, "SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure (driver missing too) means "not usable"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


@functools.cache
def _mariadb_problem() -> str | None:
    return _problem(mysql_url("mysql"))


def require_mariadb() -> str:
    """Skip (fail under CI) unless MariaDB answers; returns the server's admin URL."""
    problem = _mariadb_problem()
    if problem is not None:
        unavailable(f"MariaDB at {MYSQL_HOST}", problem)
    return mysql_url("mysql")


def create_mysql_database(
    name: str, options: str = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
) -> str:
    """Create database ``name`` (default: utf8mb4, binary collation); return its URL."""
    admin_execute(mysql_url("mysql"), f"CREATE DATABASE `{_check_name(name)}` {options}")
    return mysql_url(name)


def drop_mysql_database(name: str) -> None:
    """Drop database ``name`` if it exists."""
    admin_execute(mysql_url("mysql"), f"DROP DATABASE IF EXISTS `{_check_name(name)}`")


# -- PostgreSQL --------------------------------------------------------------------

PG_HOST = os.environ.get("CELLROUTER_TEST_PG_HOST", "127.0.0.1:5432")


def pg_url(database: str) -> str:
    """SQLAlchemy URL of ``database`` on the test PostgreSQL server."""
    return f"postgresql+psycopg://postgres@{PG_HOST}/{database}"


@functools.cache
def _postgresql_problem() -> str | None:
    return _problem(pg_url("postgres"))


def require_postgresql() -> str:
    """Skip (fail under CI) unless PostgreSQL answers; returns the server's admin URL."""
    problem = _postgresql_problem()
    if problem is not None:
        unavailable(f"PostgreSQL at {PG_HOST}", problem)
    return pg_url("postgres")


def create_pg_database(name: str) -> str:
    """Create database ``name`` (UTF8); return its URL."""
    admin_execute(
        pg_url("postgres"),
        f"CREATE DATABASE \"{_check_name(name)}\" ENCODING 'UTF8' TEMPLATE template0",
    )
    return pg_url(name)


def drop_pg_database(name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting any session left on it."""
    admin_execute(pg_url("postgres"), f'DROP DATABASE IF EXISTS "{_check_name(name)}" WITH (FORCE)')


# -- RabbitMQ ----------------------------------------------------------------------

RABBIT_HOST = os.environ.get("CELLROUTER_TEST_RABBIT_HOST", "127.0.0.1:5672")
# heartbeat_timeout_threshold=0: no heartbeat thread, so transport cleanup is quick.
_RABBIT_QUERY = "heartbeat_timeout_threshold=0"
_VHOST_RE = re.compile(r"^[A-Za-z0-9_]{1,200}$")


def rabbit_url(vhost: str = "") -> str:
    """oslo.messaging transport URL of ``vhost`` on the test RabbitMQ (guest/guest)."""
    return f"rabbit://guest:guest@{RABBIT_HOST}/{vhost}?{_RABBIT_QUERY}"


def _check_vhost(name: str) -> str:
    if not _VHOST_RE.match(name):
        raise ValueError(f"unsafe vhost name {name!r} (letters, digits, _)")
    return name


def _rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl ARGS`` (needs the local node and root); returns its stdout."""
    try:
        done = subprocess.run(
            ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(
            f"rabbitmqctl {' '.join(args)} exited {done.returncode}: "
            + (detail[-1] if detail else "")
        )
    return done.stdout


@functools.cache
def _rabbitmq_problem() -> str | None:
    try:
        import kombu  # oslo.messaging's own AMQP client

        conn = kombu.Connection(f"amqp://guest:guest@{RABBIT_HOST}//", connect_timeout=5)
        try:
            conn.connect()
        finally:
            conn.release()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


@functools.cache
def _rabbitmqctl_problem() -> str | None:
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH (needed to create vhosts)"
    try:
        _rabbitmqctl("list_vhosts", "--quiet")
    except RuntimeError as exc:
        return str(exc)
    return None


def require_rabbitmq(vhosts: bool = False) -> str:
    """Skip (fail under CI) unless RabbitMQ accepts guest/guest; returns its root-vhost URL.

    With ``vhosts=True`` also require a working ``rabbitmqctl`` (to create vhosts).
    """
    problem = _rabbitmq_problem()
    if problem is None and vhosts:
        problem = _rabbitmqctl_problem()
    if problem is not None:
        unavailable(f"RabbitMQ at {RABBIT_HOST}", problem)
    return rabbit_url()


def create_rabbitmq_vhost(name: str) -> str:
    """Create vhost ``name``, give guest all rights on it; return its transport URL."""
    _check_vhost(name)
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return rabbit_url(name)


def delete_rabbitmq_vhost(name: str) -> None:
    """Delete vhost ``name`` (and everything in it) if it exists."""
    _check_vhost(name)
    if name in _rabbitmqctl("list_vhosts", "--quiet").split():
        _rabbitmqctl("delete_vhost", name)


def rabbitmq_exchanges(vhost: str) -> list[str]:
    """Names of the exchanges declared in ``vhost``."""
    _check_vhost(vhost)
    out = _rabbitmqctl("list_exchanges", "-p", vhost, "--quiet", "--no-table-headers", "name")
    return [line.strip() for line in out.splitlines() if line.strip()]


# -- cache servers (the mapping cache's shared backends) ------------------------------

REDIS_HOST = os.environ.get("CELLROUTER_TEST_REDIS_HOST", "127.0.0.1:6379")
MEMCACHED_HOST = os.environ.get("CELLROUTER_TEST_MEMCACHED_HOST", "127.0.0.1:11211")


def _ask(host: str, request: bytes, expect: bytes) -> str | None:
    """None if ``host`` answers ``request`` with a reply starting ``expect``, else why not."""
    import socket

    name, _, port = host.rpartition(":")
    try:
        with socket.create_connection((name, int(port)), timeout=3) as sock:
            sock.settimeout(3)
            sock.sendall(request)
            reply = sock.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply.startswith(expect) else f"unexpected reply {reply[:20]!r}"


def require_redis() -> str:
    """Skip (fail under CI) unless Redis answers PING; returns its ``host:port``."""
    problem = _ask(REDIS_HOST, b"PING\r\n", b"+PONG")
    if problem is not None:
        unavailable(f"Redis at {REDIS_HOST}", problem)
    return REDIS_HOST


def require_memcached() -> str:
    """Skip (fail under CI) unless memcached answers ``version``; returns its ``host:port``."""
    problem = _ask(MEMCACHED_HOST, b"version\r\n", b"VERSION")
    if problem is not None:
        unavailable(f"memcached at {MEMCACHED_HOST}", problem)
    return MEMCACHED_HOST
