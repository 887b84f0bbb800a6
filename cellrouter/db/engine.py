"""Building SQLAlchemy engines: pool sizing, time bounds, failure hooks, fork safety.

Every engine cellrouter opens (API database, cell databases) comes from
:func:`create_engine`, so all of them get the same pool policy, the same
per-dialect time bounds (``[cells]/db_connect_timeout`` and
``db_query_timeout``), and all of them are made fork-safe in one place.

An engine's owner may pass two hooks: ``unavailable`` turns a driver's
connection error into the owner's own :class:`~cellrouter.exception.Unavailable`
(naming the cell or the option, masked), and ``gate`` refuses a new
connection at once while the owner knows the database is down.

Engines built with ``capped=True`` (the cells') share one process-wide cap on
open connections, ``[cells]/max_cell_connections`` (:class:`ConnectionCap`):
at the cap, a new connection first asks the installed evictor (the registry:
close the pools of the least recently used idle cells), then waits up to
``db_pool_timeout`` for one to close.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.engine import Engine

from cellrouter import exception, forksafe
from cellrouter.conf import get_conf
from cellrouter.db import dberror
from cellrouter.url import check_url, mask_url

__all__ = [
    "ConnectionCap",
    "Gate",
    "Unavailable",
    "connection_cap",
    "create_engine",
    "detach_after_fork",
    "parse_db_url",
    "timeout_connect_args",
]

#: ``unavailable(error, marks_down)``: the exception to raise for a driver
#: connection error. ``marks_down`` is True when the database did not answer
#: (refused, unreachable, timed out), False when an open connection was lost.
Unavailable = Callable[[BaseException, bool], BaseException]
#: ``gate()``: an exception to raise instead of opening a new connection, or None.
Gate = Callable[[], BaseException | None]

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_engines_lock = forksafe.Lock()


#: ``evict(needed)``: close idle pooled connections, about ``needed`` of them; how many closed
Evictor = Callable[[int], int]


class ConnectionCap:
    """A process-wide count of the open connections of capped engines, and its limit."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.open = 0
        self.evictor: Evictor | None = None

    def acquire(self) -> None:
        """Count one more connection, making room first when at the cap (or raise)."""
        opts = get_conf().cells
        limit, wait = int(opts.max_cell_connections), float(opts.db_pool_timeout)
        deadline = time.monotonic() + wait
        evicted = False
        while True:
            with self._cond:
                if self.open < limit:
                    self.open += 1
                    return
                if evicted:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise exception.Unavailable(
                            f"all {limit} cell database connections of this process are "
                            f"in use ([cells]/max_cell_connections); none freed up within "
                            f"{wait:g}s"
                        )
                    self._cond.wait(remaining)
                    continue
            evictor, evicted = self.evictor, True
            if evictor is not None:
                evictor(max(1, limit // 8))

    def release(self) -> None:
        with self._cond:
            self.open = max(0, self.open - 1)
            self._cond.notify()


_cap = ConnectionCap()


def connection_cap() -> ConnectionCap:
    """The process's cap on open cell database connections."""
    return _cap


class _CappedQueuePool(pool.QueuePool):
    """A QueuePool whose connections count against :func:`connection_cap`.

    Every physical connect acquires, every physical close releases; a
    connection returned to a pool that was disposed meanwhile is closed, not
    kept (it would hold a slot nobody can reclaim).
    """

    def __init__(self, creator: Any, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._cap = _cap
        self._disposed = False
        #: the engine owner's ``unavailable`` hook, for a full cap (set by create_engine)
        self.unavailable: Unavailable | None = None
        invoke = self._invoke_creator
        cap = self._cap

        def counted(record: Any) -> Any:
            try:
                cap.acquire()
            except exception.Unavailable as full:
                hook = self.unavailable
                if hook is None:
                    raise
                raise hook(full, False) from full
            try:
                return invoke(record)
            except BaseException:
                cap.release()
                raise

        self._invoke_creator = counted  # type: ignore[assignment]

    def _close_connection(self, connection: Any, *, terminate: bool = False) -> None:
        try:
            super()._close_connection(connection, terminate=terminate)
        finally:
            self._cap.release()

    def _do_return_conn(self, record: Any) -> None:
        if self._disposed:
            record.close()
            return
        super()._do_return_conn(record)

    def dispose(self) -> None:
        self._disposed = True
        super().dispose()

    def recreate(self) -> _CappedQueuePool:
        new = super().recreate()
        assert isinstance(new, _CappedQueuePool)
        new.unavailable = self.unavailable
        return new


def parse_db_url(url: str) -> sa.URL:
    """Parse a database URL or raise :class:`~cellrouter.exception.InvalidURL`."""
    check_url(url, "database")
    try:
        parsed = sa.make_url(url)
        parsed.get_dialect()
    except Exception as exc:  # noqa: BLE001 - any parse/dialect failure is a bad URL
        raise exception.InvalidURL(
            kind="database", url=mask_url(url), reason=type(exc).__name__
        ) from None
    return parsed


#: SQLite's busy timeout when ``[cells]/db_query_timeout`` is 0 (seconds).
SQLITE_BUSY_DEFAULT = 30.0


def timeout_connect_args(parsed: sa.URL, *, queries: bool = True) -> dict[str, Any]:
    """Driver arguments that bound connecting (and, with ``queries``, each round trip).

    Per dialect: PyMySQL/mysqlclient ``connect_timeout``, ``read_timeout``,
    ``write_timeout``; libpq ``connect_timeout`` (whole seconds, at least 2),
    ``tcp_user_timeout`` and a server-side ``statement_timeout``; SQLite's busy
    ``timeout``. A key already in the URL's query is the user's and wins.
    """
    opts = get_conf().cells
    connect, query = float(opts.db_connect_timeout), float(opts.db_query_timeout)
    backend = parsed.get_backend_name()
    args: dict[str, Any] = {}
    if backend in ("mysql", "mariadb"):
        integer = parsed.get_driver_name() != "pymysql"  # mysqlclient takes whole seconds
        args["connect_timeout"] = max(1, math.ceil(connect)) if integer else connect
        if queries and query > 0:
            value = max(1, math.ceil(query)) if integer else query
            args["read_timeout"] = args["write_timeout"] = value
    elif backend == "postgresql":
        args["connect_timeout"] = max(2, math.ceil(connect))
        if queries and query > 0:
            millis = max(1, round(query * 1000))
            args["tcp_user_timeout"] = millis
            if "options" not in parsed.query:
                args["options"] = f"-c statement_timeout={millis}"
    elif backend == "sqlite":
        args["timeout"] = query if queries and query > 0 else SQLITE_BUSY_DEFAULT
    return {key: value for key, value in args.items() if key not in parsed.query}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk operator work on big indexes
    finally:
        cur.close()


@functools.lru_cache(maxsize=8)
def _bounded_psycopg(bound: float) -> Any:
    """A psycopg Connection class whose every wait on the server ends after ``bound`` s.

    libpq has no read timeout: a server (or proxy) that accepted a query and
    went silent keeps a psycopg call waiting forever, whatever
    ``statement_timeout`` says. psycopg's own ``wait`` takes a timeout; this
    class always passes one, and on expiry closes the connection (so the pool
    discards it) and raises an OperationalError that says it timed out.
    """
    import psycopg

    class BoundedConnection(psycopg.Connection[Any]):
        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            try:
                return super().wait(gen, interval, bound if timeout is None else timeout)
            except psycopg.OperationalError as exc:
                if type(exc).__name__ != "_WaitTimeout":
                    raise
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"no answer from the server within {bound:g}s (timed out); connection closed"
                ) from None

    return BoundedConnection


def _install_hooks(engine: Engine, unavailable: Unavailable | None, gate: Gate | None) -> None:
    if unavailable is not None:

        def handle_error(context: sa.engine.ExceptionContext) -> BaseException | None:
            error = context.sqlalchemy_exception or context.original_exception
            if not dberror.is_connection_error(error):
                return None
            timed_out = dberror.is_timeout(error)
            if context.is_pre_ping and not timed_out:
                return None  # a stale pooled connection: the pool reconnects
            # No connection object: it failed while connecting, so nobody answered.
            marks_down = timed_out or context.connection is None
            return unavailable(error, marks_down)

        event.listen(engine, "handle_error", handle_error)
    if gate is not None:

        def do_connect(*_args: Any) -> None:
            refused = gate()
            if refused is not None:
                raise refused

        event.listen(engine, "do_connect", do_connect)


def create_engine(
    url: str | sa.URL,
    *,
    pooled: bool = True,
    capped: bool = False,
    bound_queries: bool = True,
    unavailable: Unavailable | None = None,
    gate: Gate | None = None,
    **overrides: Any,
) -> Engine:
    """An engine for ``url`` with cellrouter's pool policy and time bounds (``[cells]``).

    ``pooled=False`` gives a NullPool engine for one-off work (migrations,
    operator commands in short-lived processes). ``bound_queries=False`` keeps
    the connect timeout but lets statements run as long as they need (schema
    migrations). ``capped=True`` counts the pool's connections against the
    process-wide :func:`connection_cap`. ``unavailable`` and ``gate``: see the
    module docstring.
    """
    parsed = parse_db_url(url) if isinstance(url, str) else url
    # Bound parameters can be URLs with passwords (cell_mappings writes): keep
    # them out of exception messages and SQL logs.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    memory = is_sqlite and parsed.database in (None, "", ":memory:")
    if not pooled:
        kwargs["poolclass"] = pool.NullPool
    elif is_sqlite and memory:
        kwargs["poolclass"] = pool.StaticPool
    else:
        opts = get_conf().cells
        kwargs.update(
            poolclass=_CappedQueuePool if capped else pool.QueuePool,
            pool_size=opts.db_pool_size,
            max_overflow=opts.db_max_overflow,
            pool_recycle=opts.db_pool_recycle,
            pool_timeout=opts.db_pool_timeout,
            pool_pre_ping=opts.db_pool_pre_ping and not is_sqlite,
        )
    connect_args = timeout_connect_args(parsed, queries=bound_queries)
    if is_sqlite:
        connect_args["check_same_thread"] = False
    connect_args.update(overrides.pop("connect_args", {}))
    kwargs["connect_args"] = connect_args
    kwargs.update(overrides)
    engine = sa.create_engine(parsed, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    _install_hooks(engine, unavailable, gate)
    if isinstance(engine.pool, _CappedQueuePool):
        engine.pool.unavailable = unavailable
    query_timeout = float(get_conf().cells.db_query_timeout)
    if bound_queries and query_timeout > 0 and parsed.get_driver_name() == "psycopg":
        connection_class = _bounded_psycopg(query_timeout)

        def bounded_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            return connection_class.connect(*cargs, **cparams)

        event.listen(engine, "do_connect", bounded_connect)
    with _engines_lock:
        _engines.add(engine)
    return engine


def detach_after_fork() -> None:
    """In a forked child: forget the parent's pooled sockets without closing them
    (they are the parent's); the child opens its own on first use. Called by the
    runtime's fork hook."""
    global _cap
    evictor = _cap.evictor
    _cap = ConnectionCap()  # the parent's connections are not this process's
    _cap.evictor = evictor
    for engine in list(_engines):
        engine.dispose(close=False)
