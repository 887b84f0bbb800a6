"""Every read of the mapping index in the API database: the read contract
(:class:`~cellrouter.index.api.MappingIndex`) and the operators' queries.

:class:`MappingReader` answers them with SQLAlchemy Core;
:class:`~cellrouter.index.store.MappingStore` adds the writes. Hot lookups (a
cell, an instance, a host by its key) use statements built once with bound
parameters: a reused statement's cache key is memoized, which is most of the
cost of a one-row select.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import exception
from cellrouter.db.api_schema import (
    build_requests,
    cell_generation,
    cell_mappings,
    host_mappings,
    instance_mapping_markers,
    instance_mappings,
)
from cellrouter.db.bulk import chunks
from cellrouter.db.database import api_engine
from cellrouter.index import host_mapping, instance_mapping
from cellrouter.index.api import MappingIndex
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping

__all__ = [
    "GENERATION_ROW",
    "CellCounts",
    "MappingReader",
    "cell_id_of",
    "host_cells",
    "read_marker",
]

#: a result row of any width
AnyRow = Row[*tuple[Any, ...]]
#: the id of cell_generation's one row
GENERATION_ROW = 1

_CELLS = sa.select(cell_mappings).order_by(cell_mappings.c.id)
_CELL_BY_UUID = sa.select(cell_mappings).where(cell_mappings.c.uuid == sa.bindparam("uuid"))
_INSTANCES = sa.select(*instance_mapping.COLUMNS).select_from(
    instance_mappings.outerjoin(cell_mappings, instance_mappings.c.cell_id == cell_mappings.c.id)
)
_INSTANCE_BY_UUID = _INSTANCES.where(
    instance_mappings.c.instance_uuid == sa.bindparam("instance_uuid")
)
_HOSTS = sa.select(*host_mapping.COLUMNS).select_from(
    host_mappings.join(cell_mappings, host_mappings.c.cell_id == cell_mappings.c.id)
)
_HOST_BY_NAME = _HOSTS.where(host_mappings.c.host == sa.bindparam("host"))
_BUILD_REQUEST_BY_UUID = sa.select(build_requests).where(
    build_requests.c.instance_uuid == sa.bindparam("instance_uuid")
)
_GENERATION = sa.select(cell_generation.c.generation).where(cell_generation.c.id == GENERATION_ROW)
_MARKER = sa.select(instance_mapping_markers.c.last_instance_id).where(
    instance_mapping_markers.c.cell_id == sa.bindparam("cell_id")
)


class CellCounts(NamedTuple):
    """What the API database maps to one cell."""

    hosts: int
    #: instance mappings not queued for deletion
    live_instances: int


def cell_id_of(cell_uuid: str) -> sa.ScalarSelect[Any]:
    """The id of the cell ``cell_uuid``, as a subquery."""
    return sa.select(cell_mappings.c.id).where(cell_mappings.c.uuid == cell_uuid).scalar_subquery()


def read_marker(conn: sa.Connection, cell_id: int) -> int | None:
    """The cell's map_instances resume point, on ``conn`` (None: none stored)."""
    value = conn.execute(_MARKER, {"cell_id": cell_id}).scalar_one_or_none()
    return None if value is None else int(value)


def host_cells(conn: sa.Connection, hosts: Sequence[str]) -> dict[str, str]:
    """host -> uuid of the cell it is mapped to, for those of ``hosts`` that are mapped."""
    found: dict[str, str] = {}
    for chunk in chunks(hosts):
        stmt = (
            sa.select(host_mappings.c.host, cell_mappings.c.uuid)
            .select_from(
                host_mappings.join(cell_mappings, host_mappings.c.cell_id == cell_mappings.c.id)
            )
            .where(host_mappings.c.host.in_(chunk))
        )
        found.update((host, cell_uuid) for host, cell_uuid in conn.execute(stmt))
    return found


def _rows(stmt: sa.Executable, params: dict[str, Any] | None = None) -> list[AnyRow]:
    with api_engine().connect() as conn:
        return list(conn.execute(stmt, params))


def _count(stmt: sa.Select[Any]) -> int:
    with api_engine().connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _count_by_cell(table: sa.Table, *where: sa.ColumnElement[bool]) -> dict[int, int]:
    stmt = (
        sa.select(table.c.cell_id, sa.func.count())
        .where(table.c.cell_id.is_not(None), *where)
        .group_by(table.c.cell_id)
    )
    return {cell_id: int(count) for cell_id, count in _rows(stmt)}


class MappingReader(MappingIndex):
    """The mapping index's reads over ``[api_database]`` (one connection per call)."""

    # -- cells ----------------------------------------------------------------

    def cell(self, cell_uuid: str) -> CellMapping:
        rows = _rows(_CELL_BY_UUID, {"uuid": cell_uuid})
        if not rows:
            raise exception.CellMappingNotFound(uuid=cell_uuid)
        return CellMapping.from_row(rows[0])

    def cells(self) -> list[CellMapping]:
        return [CellMapping.from_row(row) for row in _rows(_CELLS)]

    def cells_by_disabled(self, disabled: bool) -> list[CellMapping]:
        stmt = _CELLS.where(cell_mappings.c.disabled == bool(disabled))
        return [CellMapping.from_row(row) for row in _rows(stmt)]

    def cells_of_project(self, project_id: str) -> list[CellMapping]:
        """The cells where ``project_id`` has (mapped) instances, in creation order."""
        cells_with_project = (
            sa.select(instance_mappings.c.cell_id)
            .where(instance_mappings.c.project_id == project_id)
            .where(instance_mappings.c.cell_id.is_not(None))
            .distinct()
        )
        stmt = _CELLS.where(cell_mappings.c.id.in_(cells_with_project))
        return [CellMapping.from_row(row) for row in _rows(stmt)]

    def generation(self) -> int:
        with api_engine().connect() as conn:
            value = conn.execute(_GENERATION).scalar_one_or_none()
        return 0 if value is None else int(value)

    def counts_by_cell(self) -> dict[int, CellCounts]:
        """cell id -> what is mapped to it, for every cell that has anything (two queries)."""
        hosts = _count_by_cell(host_mappings)
        live = _count_by_cell(
            instance_mappings, instance_mappings.c.queued_for_delete == sa.false()
        )
        return {
            cell_id: CellCounts(hosts.get(cell_id, 0), live.get(cell_id, 0))
            for cell_id in hosts.keys() | live.keys()
        }

    # -- instances ------------------------------------------------------------

    def instance(self, instance_uuid: str) -> InstanceMapping:
        with api_engine().connect() as conn:
            row = conn.execute(_INSTANCE_BY_UUID, {"instance_uuid": instance_uuid}).first()
        if row is None:
            raise exception.InstanceMappingNotFound(uuid=instance_uuid)
        return InstanceMapping.from_row(row)

    def refresh_instance(self, instance_uuid: str) -> InstanceMapping:
        return self.instance(instance_uuid)

    def instances(self, instance_uuids: Iterable[str]) -> list[InstanceMapping]:
        """The mappings that exist for ``instance_uuids`` (one query per 500 uuids)."""
        uuids = list(dict.fromkeys(instance_uuids))
        found: list[InstanceMapping] = []
        with api_engine().connect() as conn:
            for chunk in chunks(uuids):
                stmt = _INSTANCES.where(instance_mappings.c.instance_uuid.in_(chunk))
                found.extend(InstanceMapping.from_row(row) for row in conn.execute(stmt))
        return found

    def instances_in_cell(
        self, cell_uuid: str, limit: int | None = None, after_id: int | None = None
    ) -> list[InstanceMapping]:
        """The cell's mappings in id order, ``limit`` at a time after ``after_id``."""
        stmt = _INSTANCES.where(cell_mappings.c.uuid == cell_uuid).order_by(instance_mappings.c.id)
        if after_id is not None:
            stmt = stmt.where(instance_mappings.c.id > after_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [InstanceMapping.from_row(row) for row in _rows(stmt)]

    def instances_of_project(self, project_id: str) -> list[InstanceMapping]:
        stmt = _INSTANCES.where(instance_mappings.c.project_id == project_id).order_by(
            instance_mappings.c.id
        )
        return [InstanceMapping.from_row(row) for row in _rows(stmt)]

    def count_instances(self, cell_uuid: str) -> int:
        """How many instance mappings point to the cell (queued for deletion or not)."""
        return _count(
            sa.select(sa.func.count())
            .select_from(instance_mappings)
            .where(instance_mappings.c.cell_id == cell_id_of(cell_uuid))
        )

    # -- hosts ----------------------------------------------------------------

    def host(self, host: str) -> HostMapping:
        rows = _rows(_HOST_BY_NAME, {"host": host})
        if not rows:
            raise exception.HostMappingNotFound(host=host)
        return HostMapping.from_row(rows[0])

    def hosts(self) -> list[HostMapping]:
        return [HostMapping.from_row(row) for row in _rows(_HOSTS.order_by(host_mappings.c.host))]

    def hosts_in_cell(self, cell_uuid: str) -> list[HostMapping]:
        stmt = _HOSTS.where(cell_mappings.c.uuid == cell_uuid).order_by(host_mappings.c.host)
        return [HostMapping.from_row(row) for row in _rows(stmt)]

    def count_hosts(self, cell_uuid: str) -> int:
        """How many hosts are mapped to the cell."""
        return _count(
            sa.select(sa.func.count())
            .select_from(host_mappings)
            .where(host_mappings.c.cell_id == cell_id_of(cell_uuid))
        )

    # -- build requests and map_instances markers -----------------------------

    def build_request(self, instance_uuid: str) -> BuildRequest:
        rows = _rows(_BUILD_REQUEST_BY_UUID, {"instance_uuid": instance_uuid})
        if not rows:
            raise exception.BuildRequestNotFound(uuid=instance_uuid)
        return BuildRequest.from_row(rows[0])

    def build_requests(self, project_id: str | None = None) -> list[BuildRequest]:
        stmt = sa.select(build_requests).order_by(build_requests.c.id)
        if project_id is not None:
            stmt = stmt.where(build_requests.c.project_id == project_id)
        return [BuildRequest.from_row(row) for row in _rows(stmt)]

    def marker(self, cell_id: int) -> int | None:
        """The cell's map_instances resume point (None: no run stored one, or it was reset)."""
        with api_engine().connect() as conn:
            return read_marker(conn, cell_id)
