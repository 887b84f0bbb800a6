"""Schema verbs (``api_db`` and ``db``): migrate the API database and the cell
databases, and report their revisions. Re-exported by
:mod:`cellrouter.manage.commands`, where every verb is found.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from types import ModuleType

import sqlalchemy as sa

from cellrouter.conf import get_conf
from cellrouter.db.database import unavailable_hook
from cellrouter.exception import (
    CellMappingNotFound,
    CellUnavailable,
    ConflictingOptions,
    MissingConnection,
)
from cellrouter.index import mapping_store
from cellrouter.index.cell_mapping import CELL0_UUID
from cellrouter.manage import cell_db
from cellrouter.url import mask_url

__all__ = [
    "SyncResult",
    "api_db_sync",
    "api_db_version",
    "db_sync",
    "db_version",
    "local_cell_url",
    "naming_option",
    "sync_cell",
]


def _migration() -> ModuleType:
    """:mod:`cellrouter.db.migration`, imported on first use: alembic would add a tenth of a
    second to the start of every ``cellrouter-manage`` command that never migrates."""
    from cellrouter.db import migration

    return migration


@dataclasses.dataclass(frozen=True, slots=True)
class SyncResult:
    """One database brought to a revision: which one (``target``), from, to.

    ``url``: where it is, masked. ``skipped``: why it was not migrated (then
    ``before`` and ``after`` are None).
    """

    target: str
    before: str | None
    after: str | None
    url: str = ""
    skipped: str | None = None


@contextlib.contextmanager
def naming_option(group: str) -> Iterator[None]:
    """Any database error of ``[group]/connection`` (``api_database`` or ``database``)
    as that group's Unavailable error, naming the option with its URL masked.

    The engines' hooks convert connection errors already; this covers the
    rest an operator meets first: a wrong password, a database that does not
    exist, tables that are not there yet (the schema never synced).
    """
    try:
        yield
    except sa.exc.DBAPIError as exc:
        url = getattr(get_conf(), group).connection or ""
        raise unavailable_hook(group, url)(exc, True) from exc


def _api_url() -> str:
    url = get_conf().api_database.connection
    if not url:
        raise MissingConnection(group="api_database", option="connection")
    return url


def local_cell_url() -> str:
    """``[database]/connection`` (MissingConnection when unset)."""
    url = get_conf().database.connection
    if not url:
        raise MissingConnection(group="database", option="connection")
    return url


def api_db_sync(version: str | None = None) -> SyncResult:
    """Migrate the API database to ``version`` (default: head)."""
    url = _api_url()
    with naming_option("api_database"):
        hook = unavailable_hook("api_database", url)
        before, after = _migration().sync("api", url, version, hook)
    return SyncResult("api database", before, after, mask_url(url))


def api_db_version() -> str | None:
    """The API database's schema revision (None: empty)."""
    url = _api_url()
    with naming_option("api_database"):
        return _migration().version("api", url, unavailable_hook("api_database", url))


def sync_cell(target: str, url: str, version: str | None = None, local: bool = False) -> SyncResult:
    """Migrate one cell database (``target`` names it, never its URL) to ``version``.

    ``local``: it is ``[database]/connection``, whose failures name that option.
    """
    if not local:
        before, after = _migration().sync("cell", url, version)
    else:
        with naming_option("database"):
            hook = unavailable_hook("database", url)
            before, after = _migration().sync("cell", url, version, hook)
    return SyncResult(target, before, after, mask_url(url))


def _sync_cell0(version: str | None) -> SyncResult:
    """Migrate cell0's database, as its mapping says (nova-manage's ``db sync``).

    Skipped, and said so, when cell0 is not mapped or this host has no
    ``[api_database]/connection`` to find its mapping in. A cell0 database
    that cannot be reached raises CellUnavailable (naming the database to
    create when it does not exist).
    """
    if not get_conf().api_database.connection:
        reason = "[api_database]/connection is not set: where cell0 is cannot be known"
        return SyncResult("cell0", None, None, skipped=reason)
    try:
        with naming_option("api_database"):
            cell0 = mapping_store().cell(CELL0_UUID)
    except CellMappingNotFound:
        return SyncResult("cell0", None, None, skipped="cell0 is not mapped")
    with cell_db.reaching(cell0):
        return sync_cell(f"cell {cell0.identity}", cell0.database_connection, version)


def db_sync(
    version: str | None = None,
    all_cells: bool = False,
    local_cell: bool = False,
    progress: Callable[[SyncResult], None] | None = None,
    failed: Callable[[CellUnavailable], None] | None = None,
) -> list[SyncResult]:
    """Migrate cell0 (when mapped), then ``[database]/connection``; with
    ``local_cell`` only the latter; with ``all_cells`` every mapped cell.

    The default is nova-manage's: cell0 first (a cell0 that cannot be
    reached stops the run before ``[database]/connection``; one that is not
    mapped is reported as skipped). ``all_cells`` and ``local_cell`` together
    raise ConflictingOptions.

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

    def done(result: SyncResult) -> None:
        results.append(result)
        if progress is not None:
            progress(result)

    if all_cells and local_cell:
        raise ConflictingOptions(options=("all_cells", "local_cell"))
    if not all_cells:
        url = local_cell_url()
        cell0 = None if local_cell else _sync_cell0(version)
        if cell0 is not None and cell0.skipped is None:
            done(cell0)
        done(sync_cell("cell database", url, version, local=True))
        if cell0 is not None and cell0.skipped is not None:  # said once the rest is done
            done(cell0)
        return results
    unavailable: list[CellUnavailable] = []
    with naming_option("api_database"):
        cells = mapping_store().cells()
    for cell in cells:
        try:
            with cell_db.reaching(cell):
                done(sync_cell(f"cell {cell.identity}", cell.database_connection, version))
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
    url = local_cell_url()
    with naming_option("database"):
        return _migration().version("cell", url, unavailable_hook("database", url))
