"""The mapping index in the API database: which cell holds each instance and
host, where each cell's database and queue are, and the cached list of cells.

:func:`mapping_store` is this process's
:class:`~cellrouter.index.store.MappingStore`: every read (the
:class:`~cellrouter.index.api.MappingIndex` contract and the operator
queries) and the one writer of the mapping tables. The records' Nova-style
classmethods (``CellMapping.get_by_uuid`` ...) call it. The store module
installs its store on import; :func:`use_store` puts another in its place (a
test, or a cache in front of the API database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cellrouter.index.store import MappingStore

__all__ = ["mapping_store", "use_store"]

# Handed in rather than imported: the store imports the record modules, whose
# classmethods call mapping_store().
_store: MappingStore | None = None


def mapping_store() -> MappingStore:
    """The mapping store in use."""
    store = _store
    # Always set: importing any cellrouter module imports the package, hence the store.
    assert store is not None, "cellrouter.index.store installs the mapping store on import"
    return store


def use_store(store: MappingStore) -> MappingStore | None:
    """Read and write the index through ``store`` from now on; returns the previous one."""
    global _store
    previous, _store = _store, store
    return previous
