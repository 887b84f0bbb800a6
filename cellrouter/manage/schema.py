"""Schema verbs (``api_db`` and ``db``): migrate the API database and the cell
databases, and report their revisions. Re-exported by
:mod:`cellrouter.manage.commands`, where every verb is found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

from cellrouter.conf import get_conf
from cellrouter.db.database import unavailable_hook
from cellrouter.exception import CellUnavailable, MissingConnection
from cellrouter.index import mapping_store
from cellrouter.manage import cell_db

__all__ = [
    "SyncResult",
    "api_db_sync",
    "api_db_version",
    "db_sync",
    "db_version",
    "local_cell_url",
    "sync_cell",
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


def local_cell_url() -> str:
    """``[database]/connection`` (MissingConnection when unset)."""
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


def sync_cell(target: str, url: str, version: str | None = None, local: bool = False) -> SyncResult:
    """Migrate one cell database (``target`` names it, never its URL) to ``version``.

    ``local``: it is ``[database]/connection``, whose failures name that option.
    """
    hook = unavailable_hook("database", url) if local else None
    before, after = _migration().sync("cell", url, version, hook)
    return SyncResult(target, before, after)


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

    def done(result: SyncResult) -> None:
        results.append(result)
        if progress is not None:
            progress(result)

    if not all_cells:
        done(sync_cell("cell database", local_cell_url(), version, local=True))
        return results
    unavailable: list[CellUnavailable] = []
    for cell in mapping_store().cells():
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
    return _migration().version("cell", url, unavailable_hook("database", url))
