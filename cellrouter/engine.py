"""Building SQLAlchemy engines: pool sizing, SQLite pragmas, fork safety.

Every engine cellrouter opens (API database, cell databases) comes from
:func:`create_engine`, so all of them get the same pool policy and all of them
are made fork-safe in one place.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.engine import Engine

from cellrouter import exception, forksafe
from cellrouter.conf import get_conf
from cellrouter.url import mask_url

__all__ = ["create_engine", "parse_db_url"]

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_engines_lock = forksafe.Lock()


def parse_db_url(url: str) -> sa.URL:
    """Parse a database URL or raise :class:`~cellrouter.exception.InvalidURL`."""
    try:
        parsed = sa.make_url(url)
        parsed.get_dialect()
    except Exception as exc:  # noqa: BLE001 - any parse/dialect failure is a bad URL
        raise exception.InvalidURL(
            kind="database", url=mask_url(url), reason=type(exc).__name__
        ) from None
    return parsed


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk operator work on big indexes
    finally:
        cur.close()


def create_engine(url: str | sa.URL, *, pooled: bool = True, **overrides: Any) -> Engine:
    """An engine for ``url`` with cellrouter's pool policy (``[cells]`` options).

    ``pooled=False`` gives a NullPool engine for one-off work (migrations,
    operator commands in short-lived processes).
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
            poolclass=pool.QueuePool,
            pool_size=opts.db_pool_size,
            max_overflow=opts.db_max_overflow,
            pool_recycle=opts.db_pool_recycle,
            pool_timeout=opts.db_pool_timeout,
            pool_pre_ping=opts.db_pool_pre_ping and not is_sqlite,
        )
    if is_sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    kwargs.update(overrides)
    engine = sa.create_engine(parsed, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    with _engines_lock:
        _engines.add(engine)
    return engine


def _after_fork_in_child() -> None:
    # The parent's pooled sockets must never be used (or closed) by the child:
    # drop them without closing, the child opens its own on first use.
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
