"""Operator verbs, one plain function each: the Python API behind ``cellrouter-manage``.

Each function does the work and returns data or raises a
:mod:`cellrouter.exception` error; :mod:`cellrouter.manage.cli` only parses
arguments, maps those errors to exit codes and prints. An embedding service
calls the same functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import pathlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import sqlalchemy as sa

from cellrouter.across.probes import CellProbe, probe_cells
from cellrouter.cells.context import RequestContext, get_admin_context, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.conf import get_conf
from cellrouter.db import bulk
from cellrouter.db.api_schema import cell_mappings, host_mappings, instance_mappings
from cellrouter.db.cell_schema import compute_nodes, instances
from cellrouter.db.database import api_engine, unavailable_hook
from cellrouter.db.engine import parse_db_url
from cellrouter.exception import (
    CellHasHosts,
    CellHasInstances,
    CellHasOnlyDeletedInstances,
    CellIsCell0,
    CellMappingExists,
    CellMappingNotFound,
    CellUnavailable,
    ConfigurationError,
    ConflictingOptions,
    DuplicateCellURL,
    HostHasInstances,
    HostInOtherCell,
    HostMappingNotFound,
    InstanceMappingNotFound,
    InstanceNotFound,
    InvalidMaxCount,
    InvalidURL,
    MissingConnection,
    MissingURL,
    NoComputeHosts,
)
from cellrouter.index import events
from cellrouter.index.cell_mapping import (
    CELL0_UUID,
    NO_TRANSPORT_URL,
    CellMapping,
    format_cell_url,
    validate_transport_url,
)
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.manage import discovery, instance_mapper
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.manage.instance_mapper import MapInstancesResult
from cellrouter.url import mask_url

__all__ = [
    "Cell0Result",
    "CellStatus",
    "DeleteCellResult",
    "InstanceState",
    "MapCellResult",
    "SetupResult",
    "SyncResult",
    "UpdateResult",
    "VerifyResult",
    "api_db_sync",
    "api_db_version",
    "create_cell",
    "db_sync",
    "db_version",
    "default_cell0_url",
    "delete_cell",
    "delete_host",
    "discover_hosts",
    "list_cells",
    "list_hosts",
    "map_cell0",
    "map_cell_and_hosts",
    "map_instances",
    "parse_max_count",
    "simple_cell_setup",
    "status",
    "update_cell",
    "verify_instance",
]


def _migration() -> ModuleType:
    """:mod:`cellrouter.db.migration`, imported on first use: alembic would add a tenth of a
    second to the start of every ``cellrouter-manage`` command that never migrates."""
    from cellrouter.db import migration

    return migration


@dataclasses.dataclass(frozen=True, slots=True)
class SyncResult:
    """One database brought to a revision: which one (never its URL), from, to."""

    target: str
    before: str | None
    after: str | None


def _api_url() -> str:
    url = get_conf().api_database.connection
    if not url:
        raise MissingConnection(group="api_database", option="connection")
    return url


def _cell_url() -> str:
    url = get_conf().database.connection
    if not url:
        raise MissingConnection(group="database", option="connection")
    return url


def api_db_sync(version: str | None = None) -> SyncResult:
    """Migrate the API database to ``version`` (default: head)."""
    url = _api_url()
    before, after = _migration().sync("api", url, version, unavailable_hook("api_database", url))
    return SyncResult("api database", before, after)


def api_db_version() -> str | None:
    """The API database's schema revision (None: empty)."""
    url = _api_url()
    return _migration().version("api", url, unavailable_hook("api_database", url))


def db_sync(
    version: str | None = None,
    all_cells: bool = False,
    progress: Callable[[SyncResult], None] | None = None,
    failed: Callable[[CellUnavailable], None] | None = None,
) -> list[SyncResult]:
    """Migrate ``[database]/connection`` or, with ``all_cells``, every mapped cell.

    Cells are migrated one after another (alembic is not thread-safe);
    ``progress`` hears of each as it is done. A failing cell hurts only
    itself: a cell whose database cannot be reached (or whose URL is invalid)
    is skipped and every other cell is still migrated. Each such cell's
    CellUnavailable (naming it, masked) goes to ``failed`` as it happens;
    without ``failed``, the first one is raised once every cell has been
    tried. Any other error (an unknown ``version``, the API database) stops
    the run at once. Returns the cells migrated.
    """
    results: list[SyncResult] = []

    def migrate(target: str, url: str, local: bool = False) -> None:
        hook = unavailable_hook("database", url) if local else None
        before, after = _migration().sync("cell", url, version, hook)
        results.append(SyncResult(target, before, after))
        if progress is not None:
            progress(results[-1])

    if not all_cells:
        migrate("cell database", _cell_url(), local=True)
        return results
    unavailable: list[CellUnavailable] = []
    for cell in CellMapping.get_all(get_admin_context()):
        try:
            with _reaching(cell):
                migrate(f"cell {cell.identity}", cell.database_connection)
        except CellUnavailable as exc:
            if failed is not None:
                failed(exc)
            else:
                unavailable.append(exc)
    if unavailable:
        raise unavailable[0]
    return results


def db_version() -> str | None:
    """The schema revision of ``[database]/connection`` (None: empty)."""
    url = _cell_url()
    return _migration().version("cell", url, unavailable_hook("database", url))


# -- cell_v2: shared helpers ---------------------------------------------------


def _ctx() -> RequestContext:
    return get_admin_context()


def _transport_url(given: str | None) -> str:
    """``given`` or ``[DEFAULT]/transport_url``, checked to look like a transport URL."""
    url = given or get_conf().transport_url
    if not url:
        raise MissingURL(
            kind="transport", option="--transport-url", config="[DEFAULT]/transport_url"
        )
    validate_transport_url(format_cell_url(url, "transport"))  # a template: once filled
    return url


def _check_unique(
    ctx: RequestContext,
    database_connection: str | None,
    transport_url: str | None,
    exclude: str | None = None,
) -> None:
    """Raise DuplicateCellURL when a cell other than ``exclude`` uses either URL.

    cell0's ``none:///`` is shared by design.
    """
    cells = [cell for cell in CellMapping.get_all(ctx) if cell.uuid != exclude]
    for kind, url in (("database", database_connection), ("transport", transport_url)):
        clash = [cell for cell in cells if url and cell.uses_url(kind, url)]
        if clash:
            raise DuplicateCellURL(other=clash[0].identity, kind=kind)


@contextlib.contextmanager
def _reaching(cell: CellMapping) -> Iterator[None]:
    """Turn a failure to reach ``cell``'s database into CellUnavailable (masked)."""
    try:
        yield
    except (sa.exc.DBAPIError, InvalidURL) as exc:
        raise bulk.cell_unavailable(cell.identity, exc) from None


def _count(table: sa.Table, *where: Any) -> sa.Select[tuple[int]]:
    """``SELECT count(*) FROM table WHERE ...``"""
    return sa.select(sa.func.count()).select_from(table).where(*where)


def _count_in_cell(ctx: RequestContext, cell: CellMapping, table: sa.Table, *where: Any) -> int:
    """How many rows of ``table`` match ``where`` in ``cell``'s database."""
    stmt = _count(table, *where)
    with _reaching(cell), target_cell(ctx, cell) as cctx, cctx.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _count_in_api(table: sa.Table, *where: Any) -> int:
    with api_engine().connect() as conn:
        return int(conn.execute(_count(table, *where)).scalar_one())


@contextlib.contextmanager
def _unmapping(
    ctx: RequestContext, cell: CellMapping, nodes: sa.ColumnElement[bool] | None
) -> Iterator[sa.Connection]:
    """An API transaction for deleting mappings; on success, also unflag ``nodes`` of ``cell``.

    Order, and why: the caller's DELETEs run first inside the open API
    transaction (a failure there changes nothing anywhere); then the cell
    database's ``UPDATE compute_nodes SET mapped = false`` commits; then the
    API transaction commits. If the cell database fails, the API transaction
    rolls back: nothing is half-written. The only remaining window is the API
    COMMIT itself failing after the cell committed, and that leaves the safe
    state: nodes unflagged while their host mappings still exist, which the
    next discover_hosts simply flags again (the host is already mapped to
    this very cell). The opposite order could leave nodes flagged ``mapped``
    whose host mappings are gone: discovery would never map them again.
    A cell living in the API database itself (one SQLite file in
    development) is updated on the API connection, or it would wait on its
    own write lock.
    """
    with api_engine().begin() as api_conn:
        yield api_conn
        if nodes is not None:
            reset = (
                sa.update(compute_nodes)
                .where(compute_nodes.c.mapped == sa.true(), nodes)
                .values(mapped=False)
            )
            if cell.database_connection == get_conf().api_database.connection:
                api_conn.execute(reset)
            else:
                with _reaching(cell), target_cell(ctx, cell) as cctx:
                    with cctx.engine.begin() as cell_conn:
                        cell_conn.execute(reset)


# -- cell_v2: cells --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Cell0Result:
    """cell0's mapping, and whether this call created it."""

    cell: CellMapping
    created: bool


def default_cell0_url() -> str:
    """``[database]/connection`` with its database name suffixed ``_cell0``.

    For SQLite the file name gets the suffix: ``/x/nova.db`` -> ``/x/nova_cell0.db``.
    """
    conf_url = get_conf().database.connection
    if not conf_url:
        raise MissingURL(
            kind="cell0 database",
            option="--database_connection",
            config="[database]/connection",
        )
    url = parse_db_url(conf_url)
    name = url.database or ""
    if url.get_backend_name() == "sqlite":
        if name in ("", ":memory:"):
            raise ConfigurationError(
                reason="cell0's database cannot be derived from an in-memory SQLite "
                "[database]/connection; pass --database_connection"
            )
        path = pathlib.PurePath(name)
        name = str(path.with_name(f"{path.stem}_cell0{path.suffix}"))
    else:
        name = f"{name}_cell0"
    return url.set(database=name).render_as_string(hide_password=False)


def map_cell0(database_connection: str | None = None) -> Cell0Result:
    """Map cell0 (uuid CELL0_UUID, no queue) unless it is mapped already."""
    ctx = _ctx()
    with contextlib.suppress(CellMappingNotFound):
        return Cell0Result(CellMapping.get_by_uuid(ctx, CELL0_UUID), created=False)
    url = database_connection or default_cell0_url()
    _check_unique(ctx, url, None)
    try:
        cell = CellMapping.create(
            ctx,
            uuid=CELL0_UUID,
            name="cell0",
            database_connection=url,
            transport_url=NO_TRANSPORT_URL,
        )
    except CellMappingExists:  # mapped by a concurrent run
        return Cell0Result(CellMapping.get_by_uuid(ctx, CELL0_UUID), created=False)
    return Cell0Result(cell, created=True)


def create_cell(
    name: str | None = None,
    database_connection: str | None = None,
    transport_url: str | None = None,
    disabled: bool = False,
) -> CellMapping:
    """Map a new cell; URLs not given come from ``[database]`` / ``[DEFAULT]``.

    Raises MissingURL or InvalidURL, and DuplicateCellURL when another cell
    already has either URL.
    """
    database_connection = database_connection or get_conf().database.connection
    if not database_connection:
        raise MissingURL(
            kind="database", option="--database_connection", config="[database]/connection"
        )
    transport_url = _transport_url(transport_url)
    ctx = _ctx()
    _check_unique(ctx, database_connection, transport_url)
    return CellMapping.create(
        ctx,
        name=name,
        database_connection=database_connection,
        transport_url=transport_url,
        disabled=disabled,
    )


def list_cells() -> list[CellMapping]:
    """Every cell, sorted by name (then uuid)."""
    return sorted(CellMapping.get_all(_ctx()), key=lambda cell: (cell.name or "", cell.uuid))


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateResult:
    """The cell after the update; the fields that changed; ``already``: "disabled" or
    "enabled" when --disable/--enable asked for the state the cell was in."""

    cell: CellMapping
    changed: tuple[str, ...]
    already: str | None = None


def update_cell(
    cell_uuid: str,
    name: str | None = None,
    transport_url: str | None = None,
    database_connection: str | None = None,
    disable: bool = False,
    enable: bool = False,
) -> UpdateResult:
    """Change the given properties of a cell; everything not given keeps its value.

    Raises ConflictingOptions (disable and enable), CellMappingNotFound,
    CellIsCell0 (enabling/disabling cell0), DuplicateCellURL, InvalidURL.
    Processes pick a changed URL up the next time they target the cell: the
    connection registry is keyed by the cell's URLs.
    """
    if disable and enable:
        raise ConflictingOptions(options="--disable and --enable")
    ctx = _ctx()
    cell = CellMapping.get_by_uuid(ctx, cell_uuid)
    if (disable or enable) and cell.is_cell0():
        raise CellIsCell0(action="disabled" if disable else "enabled")
    if cell.is_cell0() and transport_url and transport_url != NO_TRANSPORT_URL:
        raise InvalidURL(
            kind="transport",
            url=mask_url(transport_url),
            reason=f"cell0 has no message queue: its transport URL stays {NO_TRANSPORT_URL}",
        )
    _check_unique(ctx, database_connection, transport_url, exclude=cell.uuid)
    changes: dict[str, Any] = {}
    if name and name != cell.name:  # like nova-manage: an empty --name changes nothing
        changes["name"] = name
    if transport_url and transport_url != cell.transport_url_template:
        changes["transport_url"] = transport_url
    if database_connection and database_connection != cell.database_connection_template:
        changes["database_connection"] = database_connection
    already = None
    if disable or enable:
        if cell.disabled == disable:
            already = "disabled" if disable else "enabled"
        else:
            changes["disabled"] = disable
    if changes:
        cell = cell.update(ctx, **changes)
    return UpdateResult(cell, tuple(changes), already)


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteCellResult:
    """What deleting a cell removed with it (non-zero only with ``force``)."""

    cell: CellMapping
    instance_mappings: int
    host_mappings: int


def delete_cell(cell_uuid: str, force: bool = False) -> DeleteCellResult:
    """Unmap a cell.

    Refuses (CellHasHosts) while hosts are mapped, (CellHasInstances) while
    its database holds live instances, and (CellHasOnlyDeletedInstances)
    while mappings of deleted instances remain. ``force`` deletes those host
    and instance mappings with the cell, unflagging its compute nodes, all
    in one API transaction (see :func:`_unmapping`); live instances still
    refuse. The cell's database is only read when it has mappings.
    """
    ctx = _ctx()
    cell = CellMapping.get_by_uuid(ctx, cell_uuid)
    n_hosts = _count_in_api(host_mappings, host_mappings.c.cell_id == cell.id)
    if n_hosts and not force:
        raise CellHasHosts(uuid=cell.uuid)
    n_instances = _count_in_api(instance_mappings, instance_mappings.c.cell_id == cell.id)
    if n_instances:
        if _count_in_cell(ctx, cell, instances, instances.c.deleted == 0):
            raise CellHasInstances(uuid=cell.uuid)
        if not force:
            raise CellHasOnlyDeletedInstances(uuid=cell.uuid, count=n_instances)
    gone: dict[str, list[str]] = {"instance": [], "host": []}
    try:
        with _unmapping(ctx, cell, sa.true() if n_hosts else None) as conn:
            if force:
                gone["instance"] = _delete_of_cell(conn, instance_mappings.c.instance_uuid, cell)
                gone["host"] = _delete_of_cell(conn, host_mappings.c.host, cell)
            stmt = sa.delete(cell_mappings).where(cell_mappings.c.id == cell.id)
            if not conn.execute(stmt).rowcount:
                raise CellMappingNotFound(uuid=cell.uuid)
    except sa.exc.IntegrityError:
        # Without --force a mapping created since the checks above still references
        # the cell: the foreign keys refuse, rather than this deleting it unasked.
        if _count_in_api(host_mappings, host_mappings.c.cell_id == cell.id):
            raise CellHasHosts(uuid=cell.uuid) from None
        raise CellHasInstances(uuid=cell.uuid) from None
    for kind in ("instance", "host"):
        if gone[kind]:
            events.mapping_changed(kind, gone[kind])  # type: ignore[arg-type]
    events.mapping_changed("cell", (cell.uuid,))
    return DeleteCellResult(cell, len(gone["instance"]), len(gone["host"]))


def _delete_of_cell(conn: sa.Connection, key: sa.Column[Any], cell: CellMapping) -> list[str]:
    """Delete every row of ``key``'s table that maps to ``cell``; return their keys.

    Two statements whatever the count: the keys (for the change listeners), then one DELETE.
    """
    table = key.table
    of_cell = table.c.cell_id == cell.id
    keys = list(conn.execute(sa.select(key).where(of_cell)).scalars())
    conn.execute(sa.delete(table).where(of_cell))
    return keys


# -- cell_v2: hosts and instances --------------------------------------------------


def discover_hosts(cell_uuid: str | None = None, by_service: bool = False) -> DiscoveryResult:
    """Map the unmapped compute hosts of every cell (or one): see :mod:`.discovery`."""
    return discovery.discover_hosts(_ctx(), cell_uuid=cell_uuid, by_service=by_service)


def parse_max_count(text: str | int | None) -> int | None:
    """``--max-count`` as typed: None, or a positive integer (else InvalidMaxCount)."""
    if text is None:
        return None
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InvalidMaxCount(value=text) from None
    if value < 1:
        raise InvalidMaxCount(value=text)
    return value


def map_instances(
    cell_uuid: str,
    max_count: int | None = None,
    reset: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> MapInstancesResult:
    """Create the cell's missing instance mappings; see :mod:`cellrouter.manage.instance_mapper`."""
    return instance_mapper.map_instances(
        _ctx(), cell_uuid, max_count=max_count, reset=reset, progress=progress
    )


def list_hosts(cell_uuid: str | None = None) -> list[HostMapping]:
    """Host mappings of one cell (CellMappingNotFound if unknown) or of all, by cell then host."""
    ctx = _ctx()
    if cell_uuid is None:
        found = HostMapping.get_all(ctx)
    else:
        CellMapping.get_by_uuid(ctx, cell_uuid)
        found = HostMapping.get_by_cell(ctx, cell_uuid)
    return sorted(found, key=lambda m: (m.cell_mapping.name or "", m.cell_mapping.uuid, m.host))


def delete_host(cell_uuid: str, host: str) -> HostMapping:
    """Unmap ``host`` from its cell and unflag its compute nodes there.

    Raises CellMappingNotFound, HostMappingNotFound, HostInOtherCell and
    HostHasInstances (live instances on the host).
    """
    ctx = _ctx()
    cell = CellMapping.get_by_uuid(ctx, cell_uuid)
    mapping = HostMapping.get_by_host(ctx, host)
    if mapping.cell_mapping.uuid != cell.uuid:
        raise HostInOtherCell(host=host, other=mapping.cell_mapping.identity, cell=cell.identity)
    live = _count_in_cell(ctx, cell, instances, instances.c.host == host, instances.c.deleted == 0)
    if live:
        raise HostHasInstances(host=host, count=live, cell=cell.identity)
    with _unmapping(ctx, cell, compute_nodes.c.host == host) as conn:
        deleted = conn.execute(
            sa.delete(host_mappings).where(
                host_mappings.c.host == host, host_mappings.c.cell_id == cell.id
            )
        ).rowcount
        if not deleted:
            raise HostMappingNotFound(host=host)
    events.mapping_changed("host", (host,))
    return mapping


@dataclasses.dataclass(frozen=True, slots=True)
class MapCellResult:
    """The cell of ``[database]/connection``, whether it was created, and the discovery run."""

    cell: CellMapping
    created: bool
    discovery: DiscoveryResult


def map_cell_and_hosts(transport_url: str | None = None, name: str | None = None) -> MapCellResult:
    """Map the cell of ``[database]/connection`` (or reuse its mapping) and discover its hosts."""
    database_connection = _cell_url()
    transport_url = _transport_url(transport_url)
    ctx = _ctx()
    existing = CellMapping.get_by_urls(ctx, database_connection=database_connection)
    if existing:
        cell, created = existing[0], False
    else:
        cell = create_cell(name, database_connection, transport_url)
        created = True
    return MapCellResult(cell, created, discover_hosts(cell.uuid))


@dataclasses.dataclass(frozen=True, slots=True)
class SetupResult:
    """Every step of simple_cell_setup."""

    cell0: Cell0Result
    cell0_schema: SyncResult
    cell: MapCellResult
    instances: MapInstancesResult


def simple_cell_setup(transport_url: str | None = None) -> SetupResult:
    """A one-cell deployment in one go: cell0 (mapped and migrated), the cell of
    ``[database]/connection`` with its hosts, and all its instances mapped.

    Idempotent. Raises NoComputeHosts (before changing anything) when
    ``[database]/connection`` has no compute nodes yet.
    """
    transport_url = _transport_url(transport_url)
    _cell_url()
    ctx = _ctx()
    alive = _count(compute_nodes, compute_nodes.c.deleted == 0)
    try:
        with ctx.engine.connect() as conn:
            hosts = conn.execute(alive).scalar_one()
    except sa.exc.DBAPIError as exc:
        raise bulk.cell_unavailable("[database]/connection", exc) from None
    if not hosts:
        raise NoComputeHosts(where="[database]/connection")
    cell0 = map_cell0()
    before, after = _migration().sync("cell", cell0.cell.database_connection)
    cell = map_cell_and_hosts(transport_url)
    mapped = map_instances(cell.cell.uuid)
    return SetupResult(cell0, SyncResult("cell0 database", before, after), cell, mapped)


class InstanceState(enum.Enum):
    """What verify_instance found."""

    MAPPED = "mapped"
    NOT_MAPPED = "not mapped"
    BUILDING = "building"
    SOFT_DELETED = "soft-deleted"
    ARCHIVED = "archived"
    CELL_UNREACHABLE = "cell unreachable"


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    """An instance's mapping state; its ``cell`` if it has one; ``reason`` (masked) if
    that cell is unreachable."""

    uuid: str
    state: InstanceState
    cell: CellMapping | None = None
    reason: str | None = None


def verify_instance(instance_uuid: str) -> VerifyResult:
    """Check that ``instance_uuid`` is mapped to a cell that really holds it."""
    ctx = _ctx()
    try:
        mapping = InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
    except InstanceMappingNotFound:
        return VerifyResult(instance_uuid, InstanceState.NOT_MAPPED)
    cell = mapping.cell_mapping
    if cell is None:
        return VerifyResult(instance_uuid, InstanceState.BUILDING)
    try:
        with _reaching(cell), target_cell(ctx.elevated(read_deleted="yes"), cell) as cctx:
            row = get_instance(cctx, instance_uuid, columns=["deleted"])
    except InstanceNotFound:
        return VerifyResult(instance_uuid, InstanceState.ARCHIVED, cell)
    except CellUnavailable as exc:
        return VerifyResult(instance_uuid, InstanceState.CELL_UNREACHABLE, cell, str(exc))
    state = InstanceState.SOFT_DELETED if row["deleted"] else InstanceState.MAPPED
    return VerifyResult(instance_uuid, state, cell)


# -- cell_v2: status ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CellStatus:
    """A cell's reachability (database and queue) and what the API database maps to it.

    ``instances`` counts mappings of instances not queued for deletion.
    """

    probe: CellProbe
    hosts: int
    instances: int

    @property
    def cell(self) -> CellMapping:
        return self.probe.cell

    @property
    def reachable(self) -> bool:
        return self.probe.reachable


def _count_by_cell(table: sa.Table, *where: Any) -> dict[int, int]:
    stmt = (
        sa.select(table.c.cell_id, sa.func.count())
        .where(table.c.cell_id.is_not(None), *where)
        .group_by(table.c.cell_id)
    )
    with api_engine().connect() as conn:
        return {cell_id: int(count) for cell_id, count in conn.execute(stmt)}


def status(timeout: float | None = None) -> list[CellStatus]:
    """Probe every cell's database and queue in parallel (``timeout`` default:
    ``[cells]/health_probe_timeout``); sorted by cell name."""
    cells = list_cells()
    hosts = _count_by_cell(host_mappings)
    live = _count_by_cell(instance_mappings, instance_mappings.c.queued_for_delete == sa.false())
    wait = timeout if timeout is not None else get_conf().cells.health_probe_timeout
    return [
        CellStatus(probe, hosts.get(probe.cell.id, 0), live.get(probe.cell.id, 0))
        for probe in probe_cells(cells, wait)
    ]
