"""What the ``cell_v2`` verbs return: immutable values the CLI prints and a service
inspects. Re-exported by :mod:`cellrouter.manage.commands`, beside the verbs.
"""

from __future__ import annotations

import dataclasses
import enum

from cellrouter.across.probes import CellProbe
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.manage.instance_mapper import MapInstancesResult
from cellrouter.manage.schema import SyncResult

__all__ = [
    "Cell0Result",
    "CellStatus",
    "DeleteCellResult",
    "InstanceState",
    "MapCellResult",
    "SetupResult",
    "UpdateResult",
    "VerifyResult",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Cell0Result:
    """cell0's mapping, and whether this call created it."""

    cell: CellMapping
    created: bool


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateResult:
    """The cell after the update; the fields that changed; ``already``: "disabled" or
    "enabled" when --disable/--enable asked for the state the cell was in."""

    cell: CellMapping
    changed: tuple[str, ...]
    already: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteCellResult:
    """What deleting a cell removed with it (non-zero only with ``force``)."""

    cell: CellMapping
    instance_mappings: int
    host_mappings: int


@dataclasses.dataclass(frozen=True, slots=True)
class MapCellResult:
    """The cell of ``[database]/connection``, whether it was created, and the discovery run."""

    cell: CellMapping
    created: bool
    discovery: DiscoveryResult


@dataclasses.dataclass(frozen=True, slots=True)
class SetupResult:
    """Every step of simple_cell_setup."""

    cell0: Cell0Result
    cell0_schema: SyncResult
    cell: MapCellResult
    instances: MapInstancesResult


class InstanceState(enum.Enum):
    """What verify_instance found."""

    MAPPED = "mapped"
    NOT_MAPPED = "not mapped"
    BUILDING = "building"
    SOFT_DELETED = "soft-deleted"
    ARCHIVED = "archived"
    CELL_UNREACHABLE = "cell unreachable"


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    """An instance's mapping state; its ``cell`` if it has one; ``reason`` (masked) if
    that cell is unreachable."""

    uuid: str
    state: InstanceState
    cell: CellMapping | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CellStatus:
    """A cell's reachability (database and queue) and what the API database maps to it.

    ``instances`` counts mappings of instances not queued for deletion.
    """

    probe: CellProbe
    hosts: int
    instances: int

    @property
    def cell(self) -> CellMapping:
        return self.probe.cell

    @property
    def reachable(self) -> bool:
        return self.probe.reachable
