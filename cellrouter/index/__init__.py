"""The mapping index in the API database: which cell holds each instance and
host, where each cell's database and queue are, and the cached list of cells.

:func:`mapping_store` is this process's :class:`~cellrouter.index.store.MappingStore`:
every read (the :class:`~cellrouter.index.api.MappingIndex` contract and the
operator queries) and the one writer of the mapping tables. The records'
Nova-style classmethods (``CellMapping.get_by_uuid`` ...) call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cellrouter.index.store import MappingStore

__all__ = ["mapping_store"]


def mapping_store() -> MappingStore:
    """The mapping store of this process (stateless over ``[api_database]``, one per process)."""
    # Imported on use: the store imports the record modules, whose classmethods call this.
    from cellrouter.index.store import STORE

    return STORE
