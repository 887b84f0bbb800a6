"""What the ``cell_v2`` verbs return: immutable values the CLI prints and a service
inspects. Re-exported by :mod:`cellrouter.manage.commands`, beside the verbs.
"""

from __future__ import annotations

import dataclasses
import enum

from cellrouter.across.probes import CellProbe
from cellrouter.index.cache_stats import CacheStats
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.manage.instance_mapper import MapInstancesResult
from cellrouter.manage.schema import SyncResult

__all__ = [
    "Cell0Result",
    "CellStatus",
    "CreateCellResult",
    "DeleteCellResult",
    "InstanceState",
    "MapCellResult",
    "SchemaState",
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
class CreateCellResult:
    """The new cell, and what looks wrong with it (masked, one line each): a
    database or queue that cannot be reached, another cell with its name."""

    cell: CellMapping
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateResult:
    """The cell after the update; the fields that changed; ``already``: "disabled" or
    "enabled" when --disable/--enable asked for the state the cell was in;
    ``warnings`` as :class:`CreateCellResult`'s, about what changed."""

    cell: CellMapping
    changed: tuple[str, ...]
    already: str | None = None
    warnings: tuple[str, ...] = ()


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
    """Every step of simple_cell_setup; ``cell0_schema.skipped`` says why cell0's
    schema could not be migrated (the rest was done anyway)."""

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
    #: mapped, but neither in its cell's table nor in its shadow (purged, or never there)
    MISSING = "missing"
    CELL_UNREACHABLE = "cell unreachable"


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    """An instance's mapping state; its ``cell`` if it has one; ``reason`` (masked) if
    that cell is unreachable."""

    uuid: str
    state: InstanceState
    cell: CellMapping | None = None
    reason: str | None = None


class SchemaState(enum.Enum):
    """A cell database's schema against the cell schema head this code knows."""

    OK = "ok"
    NO_SCHEMA = "no schema"
    BEHIND = "behind"
    #: a revision this code does not know (newer code migrated it?)
    UNKNOWN = "unknown revision"
    #: reachable, but reading the revision failed (``CellStatus.schema_error``)
    UNREADABLE = "unreadable"
    #: the database is unreachable: not read
    UNCHECKED = "unchecked"


@dataclasses.dataclass(frozen=True, slots=True)
class CellStatus:
    """A cell's reachability (database and queue), its schema revision against the
    head, and what the API database maps to it.

    ``instances`` counts mappings of instances not queued for deletion.
    ``cell_hosts`` / ``cell_instances``: live compute hosts and instances in the
    cell's own database (None: not asked for, or not read).
    """

    probe: CellProbe
    hosts: int
    instances: int
    schema: SchemaState = SchemaState.UNCHECKED
    revision: str | None = None
    head: str | None = None
    schema_error: str | None = None
    cell_hosts: int | None = None
    cell_instances: int | None = None

    @property
    def cell(self) -> CellMapping:
        return self.probe.cell

    @property
    def reachable(self) -> bool:
        return self.probe.reachable

    @property
    def schema_off_head(self) -> bool:
        """True when the cell's database was reached and its schema is not at the head."""
        return self.schema not in (SchemaState.OK, SchemaState.UNCHECKED)


@dataclasses.dataclass(frozen=True)
class CacheStatus:
    """The mapping cache as ``status --verbose`` reports it."""

    #: ``[cache]/backend``
    backend: str
    #: False: caching is off (``null``) or the backend could not be set up
    in_use: bool
    #: None when the backend answered a probe write and read, else why not
    problem: str | None
    #: this process's counters
    stats: CacheStats
