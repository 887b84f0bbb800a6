"""Operator verbs, one plain function each: the Python API behind ``cellrouter-manage``.

Each function checks its input, calls the mapping index
(:mod:`cellrouter.index.store`), discovery or the cells, and returns a result
(:mod:`cellrouter.manage.results`) or raises a :mod:`cellrouter.exception`
error; :mod:`cellrouter.manage.cli` only parses arguments, maps those errors
to exit codes and prints. An embedding service calls the same functions. The
schema verbs live in :mod:`cellrouter.manage.schema` and are found here too.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import functools
import pathlib
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from cellrouter.across.probes import CellProbe, probe_cells, probe_queue
from cellrouter.cells.context import RequestContext, get_admin_context, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.conf import get_conf
from cellrouter.db.engine import parse_db_url
from cellrouter.exception import (
    CellDatabaseMissing,
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
from cellrouter.index import cache_stats, mapping_store
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import (
    CELL0_UUID,
    NO_TRANSPORT_URL,
    CellMapping,
    format_cell_url,
    validate_transport_url,
)
from cellrouter.index.host_mapping import HostMapping
from cellrouter.manage import archive, cell_db, discovery, instance_mapper
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.manage.instance_mapper import MapInstancesResult
from cellrouter.manage.results import (
    CacheStatus,
    Cell0Result,
    CellStatus,
    CreateCellResult,
    DeleteCellResult,
    InstanceState,
    MapCellResult,
    SchemaState,
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
    naming_option,
    sync_cell,
)
from cellrouter.url import mask_url

__all__ = [
    "Cell0Result",
    "CellStatus",
    "CreateCellResult",
    "DeleteCellResult",
    "InstanceState",
    "MapCellResult",
    "SchemaState",
    "SetupResult",
    "SyncResult",
    "UpdateResult",
    "VerifyResult",
    "api_db_sync",
    "api_db_version",
    "archive_deleted_rows",
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
    "purge",
    "simple_cell_setup",
    "cache_status",
    "status",
    "update_cell",
    "verify_instance",
]


# -- cell_v2: shared helpers ---------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")


def api_database(verb: Callable[P, R]) -> Callable[P, R]:
    """Decorate a verb: a database error that reaches it unconverted is the API
    database's, raised as ApiDatabaseUnavailable naming ``[api_database]/connection``.

    Cell databases fail as CellUnavailable (:func:`cell_db.reaching`) and
    ``[database]/connection`` as CellUnavailable or DatabaseUnavailable before
    they get here, so only the API database's errors are left: a wrong password,
    a database or tables that do not exist (``api_db sync`` not run), ...
    """

    @functools.wraps(verb)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with naming_option("api_database"):
            return verb(*args, **kwargs)

    return run


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


@api_database
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


def _reach_warnings(cell: CellMapping, database: bool, queue: bool) -> list[str]:
    """Why ``cell``'s database and/or queue cannot be reached now (masked), checked
    at once, each bounded by ``[cells]/db_connect_timeout`` (per broker host)."""
    timeout = float(get_conf().cells.db_connect_timeout)
    checks: dict[str, Callable[[], str | None]] = {}
    if database:
        checks["database"] = functools.partial(cell_db.database_problem, cell.database_connection)
    if queue:

        def queue_problem() -> str | None:
            probe = probe_queue(cell.transport_url, timeout)
            return probe.error if probe.failed else None

        checks["message queue"] = queue_problem
    if not checks:
        return []
    with concurrent.futures.ThreadPoolExecutor(len(checks)) as pool:
        found = {what: pool.submit(check) for what, check in checks.items()}
    return [
        mask_url(f"Cell {cell.identity}: its {what} cannot be reached: {problem}")
        for what, future in found.items()
        if (problem := future.result())
    ]


def _name_warnings(cell: CellMapping) -> list[str]:
    """A warning when another cell has ``cell``'s name (names should tell cells apart)."""
    if not cell.name:
        return []
    others = [c for c in mapping_store().cells() if c.name == cell.name and c.uuid != cell.uuid]
    return [f"Cell {cell.identity}: cell {other.identity} has the same name." for other in others]


def _create_cell(
    name: str | None,
    database_connection: str | None,
    transport_url: str | None,
    disabled: bool = False,
) -> CellMapping:
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


@api_database
def create_cell(
    name: str | None = None,
    database_connection: str | None = None,
    transport_url: str | None = None,
    disabled: bool = False,
) -> CreateCellResult:
    """Map a new cell; URLs not given come from ``[database]`` / ``[DEFAULT]``.

    Raises MissingURL or InvalidURL, and DuplicateCellURL when another cell
    already has either URL. The cell is created even when its database or
    queue cannot be reached or another cell has its name: the result warns
    of those (the database may be created later; an operator may mean it).
    """
    cell = _create_cell(name, database_connection, transport_url, disabled)
    warnings = _name_warnings(cell) + _reach_warnings(cell, database=True, queue=True)
    return CreateCellResult(cell, tuple(warnings))


@api_database
def list_cells() -> list[CellMapping]:
    """Every cell, sorted by name (then uuid)."""
    return sorted(mapping_store().cells(), key=lambda cell: (cell.name or "", cell.uuid))


@api_database
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
    connection registry is keyed by the cell's URLs. ``warnings``: a changed
    URL that cannot be reached, a new name another cell has.
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
    updated = store.update_cell(cell, changes)
    warnings = _name_warnings(updated) if "name" in changes else []
    warnings += _reach_warnings(
        updated,
        database="database_connection" in changes,
        queue="transport_url" in changes,
    )
    return UpdateResult(updated, tuple(changes), already, tuple(warnings))


@api_database
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


@api_database
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


@api_database
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


@api_database
def list_hosts(cell_uuid: str | None = None) -> list[HostMapping]:
    """Host mappings of one cell (CellMappingNotFound if unknown) or of all, sorted by
    host name whatever the cell (as nova-manage)."""
    store = mapping_store()
    if cell_uuid is None:
        found = store.hosts()
    else:
        store.cell(cell_uuid)
        found = store.hosts_in_cell(cell_uuid)
    return sorted(found, key=lambda m: m.host)


@api_database
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


@api_database
def map_cell_and_hosts(transport_url: str | None = None, name: str | None = None) -> MapCellResult:
    """Map the cell of ``[database]/connection`` (or reuse its mapping) and discover its hosts."""
    database_connection = local_cell_url()
    transport_url = _transport_url(transport_url)
    existing = [c for c in mapping_store().cells() if c.uses_url("database", database_connection)]
    if existing:
        cell, created = existing[0], False
    else:
        cell = _create_cell(name, database_connection, transport_url)
        created = True
    return MapCellResult(cell, created, discover_hosts(cell.uuid))


@api_database
def simple_cell_setup(transport_url: str | None = None) -> SetupResult:
    """A one-cell deployment in one go: cell0 (migrated and mapped), the cell of
    ``[database]/connection`` with its hosts, and all its instances mapped.

    Idempotent. Raises NoComputeHosts (before changing anything) when
    ``[database]/connection`` has no compute nodes yet. cell0's database is
    migrated before cell0 is mapped: when it does not exist,
    CellDatabaseMissing names the database to create and nothing is mapped.
    Any other failure to migrate it is nova-manage's "Unable to sync cell0
    schema": reported in ``cell0_schema.skipped``, and the rest is done.
    """
    transport_url = _transport_url(transport_url)
    local_cell_url()
    if not cell_db.count_live_compute_nodes(_ctx()):
        raise NoComputeHosts(where="[database]/connection")
    try:
        mapped: CellMapping | None = mapping_store().cell(CELL0_UUID)
    except CellMappingNotFound:
        mapped = None
    url = mapped.database_connection if mapped else default_cell0_url()
    cell0_schema = _sync_cell0_schema(mapped, url)
    cell0 = map_cell0(url) if mapped is None else Cell0Result(mapped, created=False)
    cell = map_cell_and_hosts(transport_url)
    return SetupResult(cell0, cell0_schema, cell, map_instances(cell.cell.uuid))


def _sync_cell0_schema(mapped: CellMapping | None, url: str) -> SyncResult:
    """Migrate cell0's database at ``url`` (``mapped``: its mapping, if any).

    A database that does not exist raises (nothing to map cell0 to); any other
    failure comes back as a skipped result, as nova-manage carries on.
    """
    cell0 = mapped or CellMapping(0, CELL0_UUID, "cell0", url, NO_TRANSPORT_URL)
    try:
        with cell_db.reaching(cell0):
            return sync_cell(f"cell {cell0.identity}", url)
    except CellDatabaseMissing:
        raise
    except CellUnavailable as exc:
        return SyncResult(f"cell {cell0.identity}", None, None, mask_url(url), str(exc))


@api_database
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
        try:
            with cell_db.reaching(cell):
                archived = cell_db.is_archived(ctx, cell, instance_uuid)
        except CellUnavailable as exc:
            return VerifyResult(instance_uuid, InstanceState.CELL_UNREACHABLE, cell, str(exc))
        state = InstanceState.ARCHIVED if archived else InstanceState.MISSING
        return VerifyResult(instance_uuid, state, cell)
    except CellUnavailable as exc:
        return VerifyResult(instance_uuid, InstanceState.CELL_UNREACHABLE, cell, str(exc))
    state = InstanceState.SOFT_DELETED if row["deleted"] else InstanceState.MAPPED
    return VerifyResult(instance_uuid, state, cell)


# -- cell_v2: status ---------------------------------------------------------------


@api_database
def cache_status() -> CacheStatus:
    """The mapping cache's backend, whether it answers now, and this process's counters."""
    cache = CACHED_INDEX.cache
    return CacheStatus(cache.name, cache.region is not None, cache.check(), cache_stats.stats())


def status(timeout: float | None = None, counts: bool = False) -> list[CellStatus]:
    """Probe every cell's database and queue in parallel (``timeout`` default:
    ``[cells]/health_probe_timeout``), then read each reachable database's schema
    revision against the cell schema head (``counts``: and its live compute hosts
    and instances); sorted by cell name."""
    from cellrouter.db import migration  # alembic: only for the commands that need it

    cells = list_cells()
    mapped = mapping_store().counts_by_cell()
    wait = timeout if timeout is not None else get_conf().cells.health_probe_timeout
    probes = probe_cells(cells, wait)
    head, known = migration.head("cell"), migration.revisions("cell")

    def schema_of(probe: CellProbe) -> CellStatus:
        hosts, instances = mapped.get(probe.cell.id, (0, 0))
        if probe.database.failed:
            return CellStatus(probe, hosts, instances, head=head)
        try:
            found = cell_db.read_cell(probe.cell, counts=counts)
        except CellUnavailable as exc:
            return CellStatus(
                probe, hosts, instances, SchemaState.UNREADABLE, head=head, schema_error=str(exc)
            )
        if found.revision is None:
            state = SchemaState.NO_SCHEMA
        elif found.revision == head:
            state = SchemaState.OK
        else:
            state = SchemaState.BEHIND if found.revision in known else SchemaState.UNKNOWN
        return CellStatus(
            probe,
            hosts,
            instances,
            state,
            found.revision,
            head,
            cell_hosts=found.hosts,
            cell_instances=found.instances,
        )

    if not probes:
        return []
    with concurrent.futures.ThreadPoolExecutor(min(len(probes), 16)) as pool:
        return list(pool.map(schema_of, probes))


# -- db: archiving -------------------------------------------------------------------


@api_database
def archive_deleted_rows(
    max_rows: int = archive.DEFAULT_MAX_ROWS,
    before: datetime.datetime | None = None,
    until_complete: bool = False,
    all_cells: bool = False,
    purge: bool = False,
    progress: Callable[[int], None] | None = None,
    failed: Callable[[CellUnavailable], None] | None = None,
) -> archive.ArchiveResult:
    """Move soft-deleted rows to the shadow tables and delete the API-database rows of
    the instances among them; see :mod:`cellrouter.manage.archive`."""
    return archive.archive_deleted_rows(
        _ctx(),
        max_rows=max_rows,
        until_complete=until_complete,
        before=before,
        all_cells=all_cells,
        purge_after=purge,
        progress=progress,
        failed=failed,
    )


@api_database
def purge(
    before: datetime.datetime | None = None,
    purge_all: bool = False,
    all_cells: bool = False,
    failed: Callable[[CellUnavailable], None] | None = None,
) -> archive.PurgeResult:
    """Delete archived rows from the shadow tables (Invalid without ``before`` or
    ``purge_all``); see :mod:`cellrouter.manage.archive`."""
    return archive.purge(
        _ctx(), before=before, purge_all=purge_all, all_cells=all_cells, failed=failed
    )
