"""Reachability of every cell's database and message queue (``cell_v2 status``).

Each cell is probed in its own thread, so one slow or dead cell costs its own
timeout, not the sum of all of them. A database probe opens a fresh connection
and runs ``SELECT 1``; a queue probe really connects to RabbitMQ (kombu, one
attempt per broker host). Nothing here prints, and every error text kept in a
result has gone through :func:`~cellrouter.db.dberror.describe` (masked).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from cellrouter.db import dberror
from cellrouter.db.engine import create_engine, parse_db_url
from cellrouter.index.cell_mapping import CellMapping

__all__ = ["CellProbe", "Probe", "probe_cells", "probe_database", "probe_queue"]

State = Literal["ok", "unreachable", "n/a", "unchecked"]

#: oslo.messaging schemes whose broker speaks AMQP 0-9-1 (probed with kombu)
_AMQP_SCHEMES = frozenset({"rabbit", "kombu"})
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One reachability check: its outcome, how long it took, why it failed (masked)."""

    state: State
    latency_ms: float | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.state == "unreachable"


@dataclasses.dataclass(frozen=True, slots=True)
class CellProbe:
    """Both probes of one cell."""

    cell: CellMapping
    database: Probe
    queue: Probe

    @property
    def reachable(self) -> bool:
        return not (self.database.failed or self.queue.failed)


def _elapsed_ms(start: float) -> float:
    return (time.monotonic() - start) * 1000.0


def _connect_timeout_args(url: sa.URL, timeout: float) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend in ("mysql", "mariadb", "postgresql"):
        # both pymysql and libpq take whole seconds
        return {"connect_args": {"connect_timeout": max(1, round(timeout))}}
    return {}


def probe_database(url: str, timeout: float) -> Probe:
    """Connect to ``url`` with a fresh connection and run ``SELECT 1``."""
    start = time.monotonic()
    try:
        parsed = parse_db_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            # connecting would create an empty database file: report it missing instead
            if not os.path.exists(parsed.database):
                return Probe("unreachable", error="database file does not exist")
        engine = create_engine(parsed, pooled=False, **_connect_timeout_args(parsed, timeout))
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return Probe("unreachable", latency_ms=_elapsed_ms(start), error=dberror.describe(exc))
    return Probe("ok", latency_ms=_elapsed_ms(start))


def _kombu_urls(url: str) -> tuple[list[str], bool]:
    """kombu failover URLs (one per broker host) for an oslo.messaging rabbit URL, and ssl."""
    split = urlsplit(url)
    vhost = split.path[1:] if split.path.startswith("/") else split.path
    urls = [f"amqp://{netloc}/{vhost}" for netloc in split.netloc.split(",") if netloc]
    ssl = parse_qs(split.query).get("ssl", ["0"])[-1].lower() in _TRUE
    return urls, ssl


def _probe_amqp(url: str, timeout: float) -> Probe:
    # Heavy, and only needed for rabbit cells. Imported from its real module:
    # kombu's package-level lazy attributes are not safe to resolve from
    # several probe threads at once.
    from kombu.connection import Connection

    urls, ssl = _kombu_urls(url)
    if not urls:
        return Probe("unreachable", error="no broker host in the transport URL")
    start = time.monotonic()
    conn = Connection(urls, connect_timeout=timeout, ssl=ssl)
    try:
        # one attempt per host, no back-off between them
        conn.ensure_connection(
            max_retries=len(urls) - 1,
            interval_start=0,
            interval_step=0,
            interval_max=0,
            timeout=timeout * len(urls),
        )
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return Probe("unreachable", latency_ms=_elapsed_ms(start), error=dberror.describe(exc))
    finally:
        conn.release()
    return Probe("ok", latency_ms=_elapsed_ms(start))


def probe_queue(url: str, timeout: float) -> Probe:
    """Connect to the message queue of ``url``: ``none:///`` is n/a, ``fake://`` always ok."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        return Probe("unreachable", error=dberror.describe(exc))
    driver = scheme.split("+")[0]
    if driver == "none":
        return Probe("n/a")
    if driver == "fake":
        return Probe("ok", latency_ms=0.0)
    if driver in _AMQP_SCHEMES:
        return _probe_amqp(url, timeout)
    return Probe("unchecked", error=f"no probe for {driver or 'this'}:// transports")


def _guarded(probe: Callable[[str, float], Probe], url: str, timeout: float) -> Probe:
    """``probe(url, timeout)``; a probe that crashed reports why instead of a timeout."""
    try:
        return probe(url, timeout)
    except Exception as exc:  # noqa: BLE001 - a probe never takes the command down
        return Probe("unreachable", error=dberror.describe(exc))


def _probe_cell(cell: CellMapping, timeout: float) -> CellProbe:
    return CellProbe(
        cell,
        _guarded(probe_database, cell.database_connection, timeout),
        _guarded(probe_queue, cell.transport_url, timeout),
    )


def probe_cells(cells: Sequence[CellMapping], timeout: float) -> list[CellProbe]:
    """Probe every cell in parallel (one daemon thread each); results in ``cells`` order.

    A cell whose probes have not finished after both timeouts (plus slack) is
    reported unreachable; its daemon thread is abandoned, never waited for.
    """
    results: dict[int, CellProbe] = {}

    def run(index: int, cell: CellMapping) -> None:
        results[index] = _probe_cell(cell, timeout)

    threads = [
        threading.Thread(target=run, args=(i, cell), name=f"probe-{cell.uuid}", daemon=True)
        for i, cell in enumerate(cells)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 2 * timeout + 5.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = Probe("unreachable", error=f"no answer within {2 * timeout + 5.0:.0f} s")
    return [results.get(i) or CellProbe(cell, late, late) for i, cell in enumerate(cells)]
