"""The mapping index in the API database: which cell holds each instance and
host, where each cell's database and queue are, and the cached list of cells.

:func:`mapping_store` is this process's
:class:`~cellrouter.index.store.MappingStore`: every read straight from the
database (the :class:`~cellrouter.index.api.MappingIndex` contract and the
operator queries) and the one writer of the mapping tables.
:func:`mapping_index` is what services read through: the
:class:`~cellrouter.index.cached_index.CachedIndex` (the lookup cache and the
live cell list in front of the store). The records' Nova-style lookups
(``InstanceMapping.get_by_instance_uuid`` ...) call the index, their writes
the store. Each module installs its object on import; :func:`use_store` and
:func:`use_index` put another in its place (tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cellrouter.index.api import MappingIndex
    from cellrouter.index.store import MappingStore

__all__ = ["mapping_index", "mapping_store", "use_index", "use_store"]

# Handed in rather than imported: the store imports the record modules, whose
# classmethods call mapping_store().
_store: MappingStore | None = None
_index: MappingIndex | None = None


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


def mapping_index() -> MappingIndex:
    """The index lookups read through (the store itself until a cached index is installed)."""
    index = _index
    return index if index is not None else mapping_store()


def use_index(index: MappingIndex | None) -> MappingIndex | None:
    """Answer lookups with ``index`` from now on (None: the store); returns the previous one."""
    global _index
    previous, _index = _index, index
    return previous
