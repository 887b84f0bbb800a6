"""Operator verbs, one plain function each: the Python API behind ``cellrouter-manage``.

Each function does the work and returns data or raises a
:mod:`cellrouter.exception` error; :mod:`cellrouter.cli` only parses
arguments, maps those errors to exit codes and prints. An embedding service
calls the same functions.
"""

from __future__ import annotations

import dataclasses

from cellrouter import migration
from cellrouter.cell_mapping import CellMapping
from cellrouter.conf import get_conf
from cellrouter.context import get_admin_context
from cellrouter.exception import MissingConnection

__all__ = [
    "SyncResult",
    "api_db_sync",
    "api_db_version",
    "db_sync",
    "db_version",
]


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
    before, after = migration.sync("api", _api_url(), version)
    return SyncResult("api database", before, after)


def api_db_version() -> str | None:
    """The API database's schema revision (None: empty)."""
    return migration.version("api", _api_url())


def db_sync(version: str | None = None, all_cells: bool = False) -> list[SyncResult]:
    """Migrate ``[database]/connection`` or, with ``all_cells``, every mapped cell.

    Cells are migrated one after another (alembic is not thread-safe).
    """
    if not all_cells:
        before, after = migration.sync("cell", _cell_url(), version)
        return [SyncResult("cell database", before, after)]
    results = []
    for cell in CellMapping.get_all(get_admin_context()):
        before, after = migration.sync("cell", cell.database_connection, version)
        results.append(SyncResult(f"cell {cell.identity}", before, after))
    return results


def db_version() -> str | None:
    """The schema revision of ``[database]/connection`` (None: empty)."""
    return migration.version("cell", _cell_url())
