"""The per-process connection registry: one pooled engine and transport per cell.

Lookups of a known cell take no lock: the registry is a dict that is only
ever replaced whole. The first caller for a cell builds its engine exactly
once; its transport is built on first use, also exactly once. An entry is
keyed by (cell uuid, database URL, transport URL), so a cell whose URL
changed gets fresh connections and the stale ones are disposed. A forked
child starts with an empty registry and never touches its parent's sockets.

Open cell connections are capped per process (``[cells]/max_cell_connections``,
see :func:`cellrouter.db.engine.connection_cap`): at the cap, the pools of the
least recently used cells with no connection in use are closed (:func:`evict`),
their compiled-statement caches dropped, and rebuilt on their next use, so an
idle cell costs about nothing whatever the number of cells.
"""

from __future__ import annotations

import datetime
import itertools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from cellrouter import exception, forksafe
from cellrouter.conf import get_conf
from cellrouter.db import database, dberror
from cellrouter.db.engine import connection_cap, create_engine
from cellrouter.index.cell_mapping import NO_TRANSPORT_URL, CellMapping, format_cell_url
from cellrouter.url import mask_url

if TYPE_CHECKING:
    import oslo_messaging

__all__ = [
    "CellConnection",
    "evict",
    "get",
    "local",
    "open_connections",
    "release",
    "reset",
    "retain_current",
]

LOG = logging.getLogger(__name__)

_Key = tuple[str, str, str]

#: sentinels: the transport has not been built yet / the connection was released
_UNBUILT: Any = object()
_RELEASED: Any = object()


class CellConnection:
    """The pooled connections of one cell: its engine, and its transport on demand."""

    __slots__ = (
        "_lock",
        "_transport",
        "cell",
        "cell_uuid",
        "engine",
        "identity",
        "key",
        "last_used",
        "transport_url",
        "version",
    )

    def __init__(
        self,
        key: _Key,
        identity: str,
        engine: Engine | None = None,
        version: datetime.datetime | None = None,
        cell: CellMapping | None = None,
    ) -> None:
        self.key = key
        #: when the mapping these URLs come from was last written (None: never updated)
        self.version = version
        self.cell_uuid, database_url, self.transport_url = key
        self.identity = identity
        #: the mapping these connections were built for (None: this service's own cell)
        self.cell = cell
        #: when the cell was last looked up (a tick of :data:`_ticks`): evictions go oldest first
        self.last_used = next(_ticks)
        self.engine: Engine = (
            engine
            if engine is not None
            else create_engine(
                database_url, capped=True, unavailable=self._unavailable, gate=self._gate
            )
        )
        self._transport: oslo_messaging.Transport | None = _UNBUILT
        self._lock = forksafe.Lock()

    def unavailable(self, what: str, reason: str) -> exception.CellUnavailable:
        """The error of this cell's ``what`` ("database" or "queue") being unreachable."""
        return exception.CellUnavailable(
            cell=self.identity, uuid=self.cell_uuid, what=what, reason=f"{what}: {reason}"
        )

    def marked_down(self, what: str) -> exception.CellUnavailable:
        """The error of a cell (``what``: "database" or "queue") known down: its
        ``__cause__`` is the failure that marked it down."""
        error = self.unavailable(what, "marked down after a recent failure")
        error.__cause__ = _health.last_failure(self.cell_uuid, queue=what == "queue")
        return error

    def request_engine(self) -> Engine:
        """The engine for a request: CellUnavailable at once, without touching the
        network, while the cell is known down."""
        if self.cell is not None and _health.is_down(self.cell_uuid):
            raise self.marked_down("database")
        return self.engine

    def _unavailable(self, error: BaseException, marks_down: bool) -> BaseException:
        """Engine hook: a connection error of this cell's database (see cellrouter.db.engine)."""
        if marks_down and self.cell is not None:
            _health.record_failure(self.cell, error)
        return self.unavailable("database", dberror.describe(error))

    def _gate(self) -> BaseException | None:
        """Engine hook: no new connection to a cell known down (its probe excepted)."""
        if self.cell is not None and _health.refuses(self.cell_uuid):
            return self.marked_down("database")
        return None

    @property
    def transport(self) -> oslo_messaging.Transport | None:
        """The cell's oslo.messaging transport (None when the cell has no queue).

        Raises ConnectionsReleased once :meth:`dispose` ran (the cell changed or
        was deleted while a context held these connections).
        """
        transport = self._transport
        if transport is _UNBUILT:
            with self._lock:
                transport = self._transport
                if transport is _UNBUILT:
                    transport = self._build_transport()
                    self._transport = transport
        if transport is _RELEASED:
            raise exception.ConnectionsReleased(cell=self.identity, uuid=self.cell_uuid)
        return transport

    def _build_transport(self) -> oslo_messaging.Transport | None:
        if not self.transport_url or self.transport_url == NO_TRANSPORT_URL:
            return None
        from cellrouter import messaging  # oslo.messaging is heavy: import on first use

        return messaging.create_transport(self.transport_url)

    def rpc_client(self, topic: str, server: str | None = None, **kw: Any) -> Any:
        """A bounded RPC client for ``topic`` (and ``server``) on this cell's queue.

        Sends retry the broker ``[cells]/rpc_retry`` times (unless ``retry`` is
        given) and return or fail within ``[cells]/rpc_send_timeout``; an
        unreachable broker raises CellUnavailable and is recorded in the
        cell's health (see :class:`cellrouter.messaging.BoundedRPCClient`).
        A cell without a queue raises CellHasNoQueue.
        """
        from cellrouter import messaging

        transport = self.transport
        if transport is None:
            raise exception.CellHasNoQueue(cell=self.identity, uuid=self.cell_uuid)
        opts = get_conf().cells
        kw.setdefault("retry", opts.rpc_retry)
        client = messaging.get_rpc_client(transport, self.transport_url, topic, server, **kw)
        return messaging.BoundedRPCClient(
            client, self, opts.rpc_send_timeout, reply_timeout=kw.get("timeout")
        )

    def rpc_server(
        self, topic: str, server: str, endpoints: list[Any], executor: str | None = "threading"
    ) -> Any:
        """An RPC server for ``(topic, server)`` on this cell's queue (not started).

        It consumes casts and calls for ``topic`` addressed to ``server`` (and
        to no particular server); the caller starts it, and at shutdown calls
        ``stop()`` then ``wait()``. A cell without a queue raises CellHasNoQueue.
        """
        from cellrouter import messaging

        transport = self.transport
        if transport is None:
            raise exception.CellHasNoQueue(cell=self.identity, uuid=self.cell_uuid)
        return messaging.get_rpc_server(
            transport, self.transport_url, topic, server, endpoints, executor
        )

    # -- queue health (messaging.QueueOwner) ----------------------------------

    def queue_refused(self) -> BaseException | None:
        if self.cell is not None and _health.queue_refuses(self.cell_uuid):
            return self.marked_down("queue")
        return None

    def queue_failed(self, error: BaseException | None) -> BaseException:
        if self.cell is not None:
            _health.record_queue_failure(self.cell, error)
        reason = "no answer in time" if error is None else dberror.describe(error)
        return self.unavailable("queue", f"{mask_url(self.transport_url)}: {reason}")

    def queue_succeeded(self) -> None:
        if self.cell is not None:
            _health.record_queue_success(self.cell_uuid)

    def close_idle(self) -> int:
        """Close the pooled connections if none is in use (memory too); how many closed."""
        engine_pool = self.engine.pool
        if not isinstance(engine_pool, QueuePool) or engine_pool.checkedout():
            return 0
        idle = engine_pool.checkedin()
        if idle:
            self.engine.dispose()
            cache = getattr(self.engine, "_compiled_cache", None)
            if cache is not None:
                cache.clear()
        return idle

    def dispose(self) -> None:
        """Close pooled database connections and the transport, for good."""
        self.engine.dispose()
        with self._lock:
            transport, self._transport = self._transport, _RELEASED
        if transport not in (_UNBUILT, _RELEASED) and transport is not None:
            from cellrouter import messaging

            messaging.cleanup_transport(transport)


class HealthHooks(Protocol):
    """What the registry tells cell health and asks it (see :mod:`cellrouter.across.health`).

    Health sits above the registry (its probes use the cells' engines), so it
    is handed to the registry (:func:`set_health`) rather than imported here.
    """

    def is_down(self, cell_uuid: str) -> bool: ...

    def refuses(self, cell_uuid: str) -> bool: ...

    def record_failure(self, cell: CellMapping, error: BaseException | None) -> float | None: ...

    def last_failure(self, cell_uuid: str, queue: bool = False) -> BaseException | None: ...

    def queue_refuses(self, cell_uuid: str) -> bool: ...

    def record_queue_failure(self, cell: CellMapping, error: BaseException | None) -> None: ...

    def record_queue_success(self, cell_uuid: str) -> None: ...


class _NoHealth:
    """Nothing known about any cell (before health is set, and in tests of the registry)."""

    def is_down(self, cell_uuid: str) -> bool:
        return False

    def refuses(self, cell_uuid: str) -> bool:
        return False

    def record_failure(self, cell: CellMapping, error: BaseException | None) -> float | None:
        return None

    def last_failure(self, cell_uuid: str, queue: bool = False) -> BaseException | None:
        return None

    def queue_refuses(self, cell_uuid: str) -> bool:
        return False

    def record_queue_failure(self, cell: CellMapping, error: BaseException | None) -> None:
        return None

    def record_queue_success(self, cell_uuid: str) -> None:
        return None


_health: HealthHooks = _NoHealth()


def set_health(hooks: HealthHooks) -> None:
    """Report cell failures to ``hooks`` and ask it which cells are down (runtime wiring)."""
    global _health
    _health = hooks


#: lookup ticks (LRU order of the cells)
_ticks = itertools.count()
# Replaced whole under _lock; read without it.
_by_key: dict[_Key, CellConnection] = {}
_lock = forksafe.Lock()
_local: CellConnection | None = None


def get(cell: CellMapping) -> CellConnection:
    """The connections of ``cell``, built on the first request for it."""
    key = (cell.uuid, cell.database_connection, cell.transport_url)
    found = _by_key.get(key)
    if found is not None:
        found.last_used = next(_ticks)
        return found
    # A URL still holding {placeholders} could not be filled from this
    # process's configuration: say why instead of connecting to it literally.
    for kind, template in cell.unfilled_urls():
        format_cell_url(template, kind)  # raises InvalidURL with the reason
    return _build(key, cell)


def _newer(a: datetime.datetime | None, b: datetime.datetime | None) -> bool:
    return a is not None and (b is None or a > b)


def _build(key: _Key, cell: CellMapping) -> CellConnection:
    global _by_key
    stale: list[CellConnection] = []
    with _lock:
        found = _by_key.get(key)
        if found is not None:
            return found
        for conn in _by_key.values():
            if conn.cell_uuid == key[0] and _newer(conn.version, cell.updated_at):
                # A request still holding the mapping from before an URL change:
                # the newest known location wins, and no one's pools are torn down.
                return conn
        found = CellConnection(key, cell.identity, version=cell.updated_at, cell=cell)
        entries = {}
        for old_key, conn in _by_key.items():
            if old_key[0] == key[0]:
                stale.append(conn)  # same cell, old URLs
            else:
                entries[old_key] = conn
        entries[key] = found
        _by_key = entries
    for conn in stale:
        LOG.info("cell %s changed its URLs: replacing its connections", cell.identity)
        conn.dispose()
    return found


def local() -> CellConnection:
    """Connections of this service's own cell (``[database]``, ``[DEFAULT]/transport_url``)."""
    global _local
    conf = get_conf()
    key = ("", conf.database.connection or "", conf.transport_url or "")
    current = _local
    if current is not None and current.key == key:
        return current
    with _lock:
        current = _local
        if current is None or current.key != key:
            old = current
            current = CellConnection(key, "local cell", engine=database.local_engine())
            _local = current
            if old is not None:
                old.dispose()
    return current


def release(cell_uuids: Iterable[str]) -> None:
    """Dispose the connections of these cells (they were deleted or changed)."""
    global _by_key
    drop = set(cell_uuids)
    with _lock:
        gone = [conn for key, conn in _by_key.items() if key[0] in drop]
        if not gone:
            return
        _by_key = {key: conn for key, conn in _by_key.items() if key[0] not in drop}
    for conn in gone:
        conn.dispose()


def retain_current(cells: Iterable[CellMapping]) -> None:
    """Release the connections of every cell not in ``cells`` (no longer mapped) or
    held for URLs other than its current ones (changed by any process)."""
    current = {(cell.uuid, cell.database_connection, cell.transport_url) for cell in cells}
    stale = [key[0] for key in _by_key if key not in current]
    if stale:
        release(stale)


def evict(needed: int) -> int:
    """Close the pooled connections of the least recently used cells that have none
    in use, until about ``needed`` closed; how many did (the connection cap's evictor)."""
    freed = 0
    for conn in sorted(_by_key.values(), key=lambda conn: conn.last_used):
        freed += conn.close_idle()
        if freed >= needed:
            break
    return freed


def open_connections() -> int:
    """Open cell database connections of this process (what the cap counts)."""
    return connection_cap().open


def cell_uuids() -> list[str]:
    """The cells this process holds connections for."""
    return [key[0] for key in _by_key]


def reset() -> None:
    """Dispose everything (configuration reloaded, tests)."""
    global _local
    release([key[0] for key in _by_key])
    with _lock:
        old, _local = _local, None
    if old is not None:
        old.dispose()
    database.reset()


def on_mapping_changed(kind: str, keys: tuple[str, ...]) -> None:
    """Release a cell's connections when it was deleted or its URLs changed.

    A rename or a disable keeps them: requests in flight go on undisturbed.
    (Other processes see the change on their next lookup of the cell: a new
    URL is a new registry key.)
    """
    if kind != "cell":
        return
    held = {key[0]: key for key in _by_key if key[0] in keys}
    stale = []
    for cell_uuid, key in held.items():
        try:
            cell = CellMapping.get_by_uuid(None, cell_uuid)
        except exception.CellMappingNotFound:
            stale.append(cell_uuid)
            continue
        if (cell.database_connection, cell.transport_url) != key[1:]:
            stale.append(cell_uuid)
    if stale:
        release(stale)


def forget_after_fork() -> None:
    """In a forked child: start empty, never reusing (or closing) the parent's
    sockets (the runtime's fork hook detached the engines' pools first)."""
    global _by_key, _local
    _by_key = {}
    _local = None


connection_cap().evictor = evict
