"""The mapping index as services read it: the lookup cache and the live cell
list in front of the API database.

:class:`CachedIndex` answers the read contract
(:class:`~cellrouter.index.api.MappingIndex`): cells from the live cell list
(:mod:`cellrouter.index.live_cells`), instance and host lookups from the
lookup cache (:mod:`cellrouter.index.lookup_cache`), the rest from the
mapping store. What is cached is what the API database holds about the
mapping (its cell as a uuid, never a URL filled from this process's
configuration); the cell is joined from the live cell list on each hit, so
a cached answer always carries the cell's current URLs.

What is never cached: "not found", and an instance mapping without a cell
(still building), so an instance is visible in its cell the moment it is
mapped. Every committed mapping write drops the keys it changed
(:meth:`CachedIndex.on_mapping_changed`, subscribed by the runtime; the
store announces every write, bulk ones included). A stale answer that
survives a race (a lookup that read the database just before a write and
stored its answer just after) is caught where it is used:
:func:`~cellrouter.cells.routing.route_instance` re-reads the mapping when
the instance is not in the cell it was told.

Operator verbs read the store directly: they always see the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cellrouter import exception, forksafe
from cellrouter.conf import get_conf
from cellrouter.index import events, mapping_store, use_index
from cellrouter.index.api import MappingIndex
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.index.live_cells import LiveCells
from cellrouter.index.lookup_cache import LookupCache, from_conf

__all__ = ["CACHED_INDEX", "CachedIndex", "host_key", "instance_key"]

#: records kept for reuse on memory-cache hits (all dropped when full)
_MAX_RECORDS = 65536


def instance_key(instance_uuid: str) -> str:
    return "i:" + instance_uuid


def host_key(host: str) -> str:
    return "h:" + host


def _instance_value(m: InstanceMapping) -> tuple[Any, ...]:
    return (
        m.id,
        m.instance_uuid,
        m.cell_uuid,
        m.project_id,
        m.user_id,
        m.queued_for_delete,
        m.created_at,
        m.updated_at,
    )


def _host_value(m: HostMapping) -> tuple[Any, ...]:
    return (m.id, m.host, m.cell_mapping.uuid, m.created_at, m.updated_at)


class CachedIndex(MappingIndex):
    """The read contract, answered through the lookup cache and the live cell list."""

    def __init__(
        self, source: Callable[[], MappingIndex] = mapping_store, cache: LookupCache | None = None
    ) -> None:
        """``cache``: a lookup cache to use instead of the one ``[cache]`` configures."""
        self._source = source
        self.cells_list = LiveCells(source)
        self._given = cache
        self._cache = cache
        self._lock = forksafe.Lock()
        #: instance uuid -> (cached value, the record built from it)
        self._records: dict[str, tuple[tuple[Any, ...], InstanceMapping]] = {}

    @property
    def cache(self) -> LookupCache:
        """The lookup cache ``[cache]`` configures (built on first use)."""
        cache = self._cache
        if cache is None:
            with self._lock:
                cache = self._cache
                if cache is None:
                    cache = self._cache = from_conf(get_conf())
        return cache

    def reset(self) -> None:
        """Forget the cell list and the cache client (configuration reloaded, forked child)."""
        self.cells_list.reset()
        with self._lock:
            self._cache = self._given
            self._records = {}

    def reload(self) -> None:
        """Read the cells again now and drop this process's cached lookups."""
        self.cells_list.reload()
        self.cache.clear_local()

    # -- cells ------------------------------------------------------------------

    def cell(self, cell_uuid: str) -> CellMapping:
        cell = self.cells_list.find(cell_uuid)
        if cell is None:
            raise exception.CellMappingNotFound(uuid=cell_uuid)
        return cell

    def cells(self) -> Sequence[CellMapping]:
        return self.cells_list.all()

    def cells_by_disabled(self, disabled: bool) -> list[CellMapping]:
        return [cell for cell in self.cells_list.all() if cell.disabled == disabled]

    def generation(self) -> int:
        return self._source().generation()

    # -- instances and hosts ----------------------------------------------------

    def _instance_record(self, value: tuple[Any, ...]) -> InstanceMapping | None:
        id_, uuid, cell_uuid, project_id, user_id, queued, created, updated = value
        cell = self.cells_list.get(cell_uuid)
        if cell is None:  # a cell this process has not seen yet, or a deleted one
            return None
        # A memory backend hands back the very tuple it stored: while that and the
        # cell are the same objects, so is the record (building one costs more
        # than the rest of a hit).
        seen = self._records.get(uuid)
        if seen is not None and seen[0] is value and seen[1].cell_mapping is cell:
            return seen[1]
        record = InstanceMapping(id_, uuid, cell, project_id, user_id, queued, created, updated)
        if len(self._records) >= _MAX_RECORDS:
            self._records = {}
        self._records[uuid] = (value, record)
        return record

    def instance(self, instance_uuid: str) -> InstanceMapping:
        cache = self.cache
        key = instance_key(instance_uuid)
        value = cache.get(key)
        if value is not None:
            record = self._instance_record(value)
            if record is not None:
                return record
        return self._read_instance(instance_uuid)

    def _read_instance(self, instance_uuid: str) -> InstanceMapping:
        """The mapping from the API database, cached when it has a cell."""
        mapping = self._source().instance(instance_uuid)
        if mapping.cell_mapping is not None:
            self.cache.set(instance_key(instance_uuid), _instance_value(mapping))
        return mapping

    def instances(self, instance_uuids: Iterable[str]) -> list[InstanceMapping]:
        uuids = list(dict.fromkeys(instance_uuids))
        cache = self.cache
        found: list[InstanceMapping] = []
        missing: list[str] = []
        values = cache.get_multi([instance_key(uuid) for uuid in uuids])
        for uuid, value in zip(uuids, values, strict=True):
            record = self._instance_record(value) if value is not None else None
            if record is None:
                missing.append(uuid)
            else:
                found.append(record)
        if missing:
            read = self._source().instances(missing)
            cache.set_multi(
                {
                    instance_key(m.instance_uuid): _instance_value(m)
                    for m in read
                    if m.cell_mapping is not None
                }
            )
            found.extend(read)
        return found

    def refresh_instance(self, instance_uuid: str) -> InstanceMapping:
        self.cache.invalidate([instance_key(instance_uuid)])
        return self._read_instance(instance_uuid)

    def host(self, host: str) -> HostMapping:
        cache = self.cache
        key = host_key(host)
        value = cache.get(key)
        if value is not None:
            id_, name, cell_uuid, created, updated = value
            cell = self.cells_list.get(cell_uuid)
            if cell is not None:
                return HostMapping(id_, name, cell, created, updated)
        mapping = self._source().host(host)
        cache.set(key, _host_value(mapping))
        return mapping

    def build_request(self, instance_uuid: str) -> BuildRequest:
        return self._source().build_request(instance_uuid)

    # -- invalidation -----------------------------------------------------------

    def on_mapping_changed(self, kind: events.Kind, keys: tuple[str, ...]) -> None:
        """A mapping write committed (in this process): drop what it changed."""
        if kind == "instance":
            self.cache.invalidate(instance_key(key) for key in keys)
        elif kind == "host":
            self.cache.invalidate(host_key(key) for key in keys)
        else:
            self.cells_list.expire()


#: this process's cached index; the records' lookups read through it
CACHED_INDEX = CachedIndex()
use_index(CACHED_INDEX)
