"""Operator verbs, one plain function each: the Python API behind ``cellrouter-manage``.

Each function checks its input, calls the mapping index
(:mod:`cellrouter.index.store`), discovery or the cells, and returns a result
(:mod:`cellrouter.manage.results`) or raises a :mod:`cellrouter.exception`
error; :mod:`cellrouter.manage.cli` only parses arguments, maps those errors
to exit codes and prints. An embedding service calls the same functions. The
schema verbs live in :mod:`cellrouter.manage.schema` and are found here too.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Callable
from typing import Any

from cellrouter.across.probes import probe_cells
from cellrouter.cells.context import RequestContext, get_admin_context, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.conf import get_conf
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
    InstanceMappingNotFound,
    InstanceNotFound,
    InvalidMaxCount,
    InvalidURL,
    MissingURL,
    NoComputeHosts,
)
from cellrouter.index import mapping_store
from cellrouter.index.cell_mapping import (
    CELL0_UUID,
    NO_TRANSPORT_URL,
    CellMapping,
    format_cell_url,
    validate_transport_url,
)
from cellrouter.index.host_mapping import HostMapping
from cellrouter.manage import cell_db, discovery, instance_mapper
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.manage.instance_mapper import MapInstancesResult
from cellrouter.manage.results import (
    Cell0Result,
    CellStatus,
    DeleteCellResult,
    InstanceState,
    MapCellResult,
    SetupResult,
    UpdateResult,
    VerifyResult,
)
from cellrouter.manage.schema import (
    SyncResult,
    api_db_sync,
    api_db_version,
    db_sync,
    db_version,
    local_cell_url,
    sync_cell,
)
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
    database_connection: str | None, transport_url: str | None, exclude: str | None = None
) -> None:
    """Raise DuplicateCellURL when a cell other than ``exclude`` uses either URL.

    cell0's ``none:///`` is shared by design.
    """
    cells = [cell for cell in mapping_store().cells() if cell.uuid != exclude]
    for kind, url in (("database", database_connection), ("transport", transport_url)):
        clash = [cell for cell in cells if url and cell.uses_url(kind, url)]
        if clash:
            raise DuplicateCellURL(other=clash[0].identity, kind=kind)


# -- cell_v2: cells --------------------------------------------------------------


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
                "[database]/connection: give its URL explicitly"
            )
        path = pathlib.PurePath(name)
        name = str(path.with_name(f"{path.stem}_cell0{path.suffix}"))
    else:
        name = f"{name}_cell0"
    return url.set(database=name).render_as_string(hide_password=False)


def map_cell0(database_connection: str | None = None) -> Cell0Result:
    """Map cell0 (uuid CELL0_UUID, no queue) unless it is mapped already."""
    store = mapping_store()
    with contextlib.suppress(CellMappingNotFound):
        return Cell0Result(store.cell(CELL0_UUID), created=False)
    url = database_connection or default_cell0_url()
    _check_unique(url, None)
    try:
        cell = store.create_cell(
            uuid=CELL0_UUID,
            name="cell0",
            database_connection=url,
            transport_url=NO_TRANSPORT_URL,
        )
    except CellMappingExists:  # mapped by a concurrent run
        return Cell0Result(store.cell(CELL0_UUID), created=False)
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
    _check_unique(database_connection, transport_url)
    return mapping_store().create_cell(
        name=name,
        database_connection=database_connection,
        transport_url=transport_url,
        disabled=disabled,
    )


def list_cells() -> list[CellMapping]:
    """Every cell, sorted by name (then uuid)."""
    return sorted(mapping_store().cells(), key=lambda cell: (cell.name or "", cell.uuid))


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
        raise ConflictingOptions(options=("disable", "enable"))
    store = mapping_store()
    cell = store.cell(cell_uuid)
    if (disable or enable) and cell.is_cell0():
        raise CellIsCell0(action="disabled" if disable else "enabled")
    if cell.is_cell0() and transport_url and transport_url != NO_TRANSPORT_URL:
        raise InvalidURL(
            kind="transport",
            url=mask_url(transport_url),
            reason=f"cell0 has no message queue: its transport URL stays {NO_TRANSPORT_URL}",
        )
    _check_unique(database_connection, transport_url, exclude=cell.uuid)
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
    return UpdateResult(store.update_cell(cell, changes), tuple(changes), already)


def delete_cell(cell_uuid: str, force: bool = False) -> DeleteCellResult:
    """Unmap a cell.

    Refuses (CellHasHosts) while hosts are mapped, (CellHasInstances) while
    its database holds live instances, and (CellHasOnlyDeletedInstances)
    while mappings of deleted instances remain. ``force`` deletes those host
    and instance mappings with the cell, unflagging its compute nodes, all
    in one API transaction (see :mod:`cellrouter.db.two_phase`); live
    instances still refuse. The cell's database is only read when it has
    mappings.
    """
    ctx, store = _ctx(), mapping_store()
    cell = store.cell(cell_uuid)
    n_hosts = store.count_hosts(cell.uuid)
    if n_hosts and not force:
        raise CellHasHosts(uuid=cell.uuid)
    n_instances = store.count_instances(cell.uuid)
    if n_instances:
        if cell_db.count_live_instances(ctx, cell):
            raise CellHasInstances(uuid=cell.uuid)
        if not force:
            raise CellHasOnlyDeletedInstances(uuid=cell.uuid, count=n_instances)
    unflag = cell_db.unflag_nodes(ctx, cell) if n_hosts else None
    return DeleteCellResult(cell, *store.delete_cell(cell, force=force, then=unflag))


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
    store = mapping_store()
    if cell_uuid is None:
        found = store.hosts()
    else:
        store.cell(cell_uuid)
        found = store.hosts_in_cell(cell_uuid)
    return sorted(found, key=lambda m: (m.cell_mapping.name or "", m.cell_mapping.uuid, m.host))


def delete_host(cell_uuid: str, host: str) -> HostMapping:
    """Unmap ``host`` from its cell and unflag its compute nodes there.

    Raises CellMappingNotFound, HostMappingNotFound, HostInOtherCell and
    HostHasInstances (live instances on the host).
    """
    ctx, store = _ctx(), mapping_store()
    cell = store.cell(cell_uuid)
    mapping = store.host(host)
    if mapping.cell_mapping.uuid != cell.uuid:
        raise HostInOtherCell(host=host, other=mapping.cell_mapping.identity, cell=cell.identity)
    live = cell_db.count_live_instances(ctx, cell, host=host)
    if live:
        raise HostHasInstances(host=host, count=live, cell=cell.identity)
    store.delete_host(host, cell=cell, then=cell_db.unflag_nodes(ctx, cell, host=host))
    return mapping


def map_cell_and_hosts(transport_url: str | None = None, name: str | None = None) -> MapCellResult:
    """Map the cell of ``[database]/connection`` (or reuse its mapping) and discover its hosts."""
    database_connection = local_cell_url()
    transport_url = _transport_url(transport_url)
    existing = [c for c in mapping_store().cells() if c.uses_url("database", database_connection)]
    if existing:
        cell, created = existing[0], False
    else:
        cell = create_cell(name, database_connection, transport_url)
        created = True
    return MapCellResult(cell, created, discover_hosts(cell.uuid))


def simple_cell_setup(transport_url: str | None = None) -> SetupResult:
    """A one-cell deployment in one go: cell0 (mapped and migrated), the cell of
    ``[database]/connection`` with its hosts, and all its instances mapped.

    Idempotent. Raises NoComputeHosts (before changing anything) when
    ``[database]/connection`` has no compute nodes yet.
    """
    transport_url = _transport_url(transport_url)
    local_cell_url()
    if not cell_db.count_live_compute_nodes(_ctx()):
        raise NoComputeHosts(where="[database]/connection")
    cell0 = map_cell0()
    cell0_schema = sync_cell("cell0 database", cell0.cell.database_connection)
    cell = map_cell_and_hosts(transport_url)
    return SetupResult(cell0, cell0_schema, cell, map_instances(cell.cell.uuid))


def verify_instance(instance_uuid: str) -> VerifyResult:
    """Check that ``instance_uuid`` is mapped to a cell that really holds it."""
    ctx = _ctx()
    try:
        mapping = mapping_store().instance(instance_uuid)
    except InstanceMappingNotFound:
        return VerifyResult(instance_uuid, InstanceState.NOT_MAPPED)
    cell = mapping.cell_mapping
    if cell is None:
        return VerifyResult(instance_uuid, InstanceState.BUILDING)
    try:
        with cell_db.reaching(cell), target_cell(ctx.elevated(read_deleted="yes"), cell) as cctx:
            row = get_instance(cctx, instance_uuid, columns=["deleted"])
    except InstanceNotFound:
        return VerifyResult(instance_uuid, InstanceState.ARCHIVED, cell)
    except CellUnavailable as exc:
        return VerifyResult(instance_uuid, InstanceState.CELL_UNREACHABLE, cell, str(exc))
    state = InstanceState.SOFT_DELETED if row["deleted"] else InstanceState.MAPPED
    return VerifyResult(instance_uuid, state, cell)


# -- cell_v2: status ---------------------------------------------------------------


def status(timeout: float | None = None) -> list[CellStatus]:
    """Probe every cell's database and queue in parallel (``timeout`` default:
    ``[cells]/health_probe_timeout``); sorted by cell name."""
    cells = list_cells()
    counts = mapping_store().counts_by_cell()
    wait = timeout if timeout is not None else get_conf().cells.health_probe_timeout
    return [
        CellStatus(probe, *counts.get(probe.cell.id, (0, 0))) for probe in probe_cells(cells, wait)
    ]
