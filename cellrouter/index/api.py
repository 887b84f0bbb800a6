"""The contracts of the mapping index. :class:`MappingIndex`, the reads: what
routing, listing and the operator verbs ask of it, and all that a cache in
front of the API database must answer. :data:`WriteHook`, what runs inside
each write; and the values bulk writes take and give.

Records are the immutable values of :mod:`cellrouter.index.cell_mapping` and
friends. A lookup of something not mapped raises the record's ``NotFound``
error (``CellMappingNotFound``, ``InstanceMappingNotFound``,
``HostMappingNotFound``, ``BuildRequestNotFound``); bulk lookups skip what is
missing. :class:`cellrouter.index.store.MappingStore` answers from the API
database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol

import sqlalchemy as sa

from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.events import Kind
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping

__all__ = ["MappingIndex", "NewInstanceMapping", "Unmapped", "WriteHook"]


class MappingIndex(Protocol):
    """Reads of the cell, instance and host mappings (and build requests)."""

    def cell(self, cell_uuid: str) -> CellMapping:
        """One cell (CellMappingNotFound)."""
        ...

    def cells(self) -> Sequence[CellMapping]:
        """Every cell, cell0 and disabled ones included, in creation order."""
        ...

    def cells_by_disabled(self, disabled: bool) -> Sequence[CellMapping]:
        """The cells that are (not) disabled: what scheduling may choose from."""
        ...

    def instance(self, instance_uuid: str) -> InstanceMapping:
        """Where an instance lives, its cell joined (InstanceMappingNotFound)."""
        ...

    def refresh_instance(self, instance_uuid: str) -> InstanceMapping:
        """Where an instance lives, read from the API database even when a cached
        answer exists (which it replaces): for an answer that proved stale on use."""
        ...

    def instances(self, instance_uuids: Iterable[str]) -> Sequence[InstanceMapping]:
        """The mappings that exist among ``instance_uuids`` (duplicates asked once)."""
        ...

    def host(self, host: str) -> HostMapping:
        """Which cell a compute host belongs to (HostMappingNotFound)."""
        ...

    def build_request(self, instance_uuid: str) -> BuildRequest:
        """An instance not in a cell yet (BuildRequestNotFound)."""
        ...

    def generation(self) -> int:
        """The cell list's version: it moves with every cell create, update and delete,
        in any process, so a cached cell list is current while this has not moved."""
        ...


#: ``hook(conn, kind, keys)``: run by the mapping store inside every write
#: transaction, once per kind of mapping the write changed (keys: cell uuids,
#: instance uuids or host names); one that raises rolls the write back.
WriteHook = Callable[[sa.Connection, Kind, tuple[str, ...]], None]


class NewInstanceMapping(NamedTuple):
    """An instance mapping to create in bulk (its cell is given with the batch)."""

    instance_uuid: str
    project_id: str
    user_id: str | None = None
    queued_for_delete: bool = False


class Unmapped(NamedTuple):
    """The mappings a forced cell delete removed with the cell."""

    instances: int
    hosts: int
