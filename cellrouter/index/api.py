"""The read contract of the mapping index: what routing, listing and the operator
verbs ask of it, and all that a cache in front of the API database must answer.

Records are the immutable values of :mod:`cellrouter.index.cell_mapping` and
friends. A lookup of something not mapped raises the record's ``NotFound``
error (``CellMappingNotFound``, ``InstanceMappingNotFound``,
``HostMappingNotFound``, ``BuildRequestNotFound``); bulk lookups skip what is
missing. :class:`cellrouter.index.store.MappingStore` answers from the API
database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping

__all__ = ["MappingIndex"]


class MappingIndex(Protocol):
    """Reads of the cell, instance and host mappings (and build requests)."""

    def cell(self, cell_uuid: str) -> CellMapping:
        """One cell (CellMappingNotFound)."""
        ...

    def cells(self) -> Sequence[CellMapping]:
        """Every cell, cell0 and disabled ones included, in creation order."""
        ...

    def instance(self, instance_uuid: str) -> InstanceMapping:
        """Where an instance lives, its cell joined (InstanceMappingNotFound)."""
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
