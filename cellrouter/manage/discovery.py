"""Host discovery: map every compute host of the cells to its cell, in bulk.

:func:`discover_hosts` is what ``cellrouter-manage cell_v2 discover_hosts``
and the scheduler's periodic task run. Per cell it costs a handful of
statements whatever the number of hosts: one read of the candidate hosts,
then in the API database chunked IN reads of their existing mappings and one
multi-row "insert, skip duplicates" (:meth:`MappingStore.map_hosts
<cellrouter.index.store.MappingStore.map_hosts>`), and (compute-node mode)
chunked UPDATEs marking the nodes mapped. Several processes may discover at
once: a host is mapped exactly once, nobody fails, and a host already mapped
to another cell is reported, never moved.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence

import sqlalchemy as sa

from cellrouter import exception
from cellrouter.cells.context import RequestContext, get_admin_context, target_cell
from cellrouter.conf import get_conf
from cellrouter.db import bulk
from cellrouter.db.cell_schema import compute_nodes, services
from cellrouter.index import mapping_store
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.url import mask_url

__all__ = [
    "COMPUTE_BINARIES",
    "DiscoveryResult",
    "HostConflict",
    "PeriodicDiscovery",
    "discover_hosts",
    "start_periodic_discovery",
]

LOG = logging.getLogger(__name__)

#: Service binaries whose hosts are compute hosts (``by_service`` discovery).
COMPUTE_BINARIES = ("nova-compute", "cellrouter-compute")


@dataclasses.dataclass(frozen=True, slots=True)
class HostConflict:
    """A host found in ``cell_uuid`` but already mapped to ``mapped_cell_uuid``."""

    host: str
    cell_uuid: str
    mapped_cell_uuid: str


@dataclasses.dataclass(frozen=True, slots=True)
class DiscoveryResult:
    """What one discovery run did.

    ``new_hosts``: ``(cell_uuid, host)`` pairs this run mapped (sorted; hosts a
    concurrent run mapped first are not listed). ``conflicts``: hosts seen
    in a cell but mapped to another one (left alone). ``cells_scanned``:
    cells read successfully (cell0 is never scanned). ``failed_cells``: cell
    uuid -> masked reason, for cells whose database could not be read; the
    other cells are still discovered.
    """

    new_hosts: list[tuple[str, str]]
    conflicts: list[HostConflict]
    cells_scanned: int
    failed_cells: dict[str, str] = dataclasses.field(default_factory=dict)


def _candidate_hosts(conn: sa.Connection, by_service: bool) -> list[str]:
    """Distinct, sorted hosts of the cell still to check (one query)."""
    if by_service:
        stmt = sa.select(services.c.host).where(
            services.c.binary.in_(COMPUTE_BINARIES),
            services.c.deleted == 0,
            services.c.host.is_not(None),
        )
    else:
        stmt = sa.select(compute_nodes.c.host).where(
            compute_nodes.c.mapped == sa.false(),
            compute_nodes.c.deleted == 0,
            compute_nodes.c.host.is_not(None),
        )
    return sorted({host for (host,) in conn.execute(stmt.distinct())})


def _mark_nodes_mapped(engine: sa.Engine, hosts: Sequence[str]) -> None:
    """Flag every live, unflagged compute node of ``hosts`` as mapped (chunked UPDATEs)."""
    with engine.begin() as conn:
        for chunk in bulk.chunks(hosts):
            conn.execute(
                sa.update(compute_nodes)
                .where(
                    compute_nodes.c.host.in_(chunk),
                    compute_nodes.c.mapped == sa.false(),
                    compute_nodes.c.deleted == 0,
                )
                .values(mapped=True)
            )


def _discover_cell(
    ctx: RequestContext, cell: CellMapping, by_service: bool
) -> tuple[list[str], list[HostConflict]]:
    """Discover one cell; its database errors raise CellUnavailable, API ones propagate."""
    try:
        with target_cell(ctx, cell) as cctx:
            engine = cctx.engine
    except exception.InvalidURL as exc:
        raise bulk.cell_unavailable(cell.identity, exc) from None
    try:
        with engine.connect() as conn:
            hosts = _candidate_hosts(conn, by_service)
    except sa.exc.DBAPIError as exc:
        raise bulk.cell_unavailable(cell.identity, exc) from None
    if not hosts:
        return [], []
    inserted, mapped = mapping_store().map_hosts(cell, hosts)
    conflicts = [
        HostConflict(host=host, cell_uuid=cell.uuid, mapped_cell_uuid=mapped[host])
        for host in hosts
        if host in mapped and mapped[host] != cell.uuid
    ]
    if conflicts:
        LOG.warning(
            "%d host(s) found in cell %s are mapped to another cell and were left alone: %s",
            len(conflicts),
            cell.identity,
            ", ".join(f"{c.host} (in {c.mapped_cell_uuid})" for c in conflicts[:10])
            + (", ..." if len(conflicts) > 10 else ""),
        )
    ours = [host for host in hosts if mapped.get(host) == cell.uuid]
    if ours and not by_service:
        try:
            bulk.retry_on_deadlock(_mark_nodes_mapped, engine, ours)
        except sa.exc.DBAPIError as exc:  # mappings are committed: the next run flags them
            raise bulk.cell_unavailable(cell.identity, exc) from None
    return inserted, conflicts


def _cells_to_scan(cell_uuid: str | None) -> list[CellMapping]:
    store = mapping_store()
    cells = [store.cell(cell_uuid)] if cell_uuid is not None else store.cells()
    return [cell for cell in cells if not cell.is_cell0()]


def discover_hosts(
    ctx: RequestContext | None = None,
    cell_uuid: str | None = None,
    by_service: bool = False,
) -> DiscoveryResult:
    """Map the compute hosts of every cell (or of ``cell_uuid``) that have no host mapping.

    Default: hosts of compute nodes not yet flagged ``mapped``; every node
    of a host mapped to its own cell is then flagged, so the next run skips
    it. ``by_service``: hosts of the compute services instead (nodes are
    not touched). cell0 is skipped. Raises
    :class:`~cellrouter.exception.CellMappingNotFound` for an unknown
    ``cell_uuid``; a cell whose database fails is reported in
    ``failed_cells`` and the others are still discovered.
    """
    ctx = ctx if ctx is not None else get_admin_context()
    new_hosts: list[tuple[str, str]] = []
    conflicts: list[HostConflict] = []
    failed: dict[str, str] = {}
    scanned = 0
    for cell in _cells_to_scan(cell_uuid):
        try:
            inserted, cell_conflicts = _discover_cell(ctx, cell, by_service)
        except exception.CellUnavailable as exc:
            LOG.error("Host discovery skipped a cell: %s", exc)
            failed[cell.uuid] = str(exc)
            continue
        scanned += 1
        new_hosts.extend((cell.uuid, host) for host in inserted)
        conflicts.extend(cell_conflicts)
        if inserted:
            LOG.info("Mapped %d new host(s) to cell %s", len(inserted), cell.identity)
    return DiscoveryResult(new_hosts, conflicts, scanned, failed)


class PeriodicDiscovery:
    """A daemon thread running :func:`discover_hosts` every ``interval`` seconds.

    Meant for schedulers: every scheduler process may run one, discovery is
    safe to run concurrently. Errors are logged (masked) and the next round
    runs as planned. ``interval`` None or <= 0 (the option's -1): disabled,
    :meth:`start` does nothing.
    """

    def __init__(self, interval: float | None, by_service: bool = False) -> None:
        self.interval = interval
        self.by_service = by_service
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.interval is not None and self.interval > 0

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> PeriodicDiscovery:
        """Start the thread (first run at once); no-op when disabled or already running."""
        if self.enabled and not self.running:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="cellrouter-discover-hosts", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` seconds for the current run."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def run_once(self) -> DiscoveryResult | None:
        """One discovery round; errors are logged, never raised."""
        try:
            result = discover_hosts(get_admin_context(), by_service=self.by_service)
        except Exception as exc:  # noqa: BLE001 - a periodic task must survive anything
            LOG.error("Periodic host discovery failed: %s", mask_url(str(exc)))
            return None
        finally:
            self.runs += 1
        if result.new_hosts:
            LOG.info("Periodic host discovery mapped %d host(s)", len(result.new_hosts))
        return result

    def _loop(self) -> None:
        assert self.interval is not None
        while not self._stop.is_set():
            self.run_once()
            if self._stop.wait(self.interval):
                break


def start_periodic_discovery(
    interval: float | None = None, by_service: bool = False
) -> PeriodicDiscovery:
    """Start periodic discovery every ``interval`` seconds.

    ``interval`` None: ``[scheduler]/discover_hosts_in_cells_interval``. The
    handle is returned even when disabled (-1), so callers can always
    ``stop()`` it.
    """
    if interval is None:
        interval = get_conf().scheduler.discover_hosts_in_cells_interval
    return PeriodicDiscovery(interval, by_service=by_service).start()
