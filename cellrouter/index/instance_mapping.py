"""Instance mappings: instance uuid -> cell, in the API database.

This is where an instance's cell gets resolved. A mapping whose cell is None
belongs to an instance that is still being built (not scheduled yet). Lookups
join the cell in the same query (:data:`COLUMNS`), so resolving an instance
costs one round trip to the API database. Reads and writes are
:mod:`cellrouter.index.store`'s; the classmethods here call it.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Row

from cellrouter.db.api_schema import instance_mappings
from cellrouter.index import mapping_index, mapping_store
from cellrouter.index.cell_mapping import JOINED_COLUMNS, CellMapping

__all__ = ["COLUMNS", "InstanceMapping"]

#: The row layout :meth:`InstanceMapping.from_row` reads: the mapping's columns,
#: then its cell's (outer-joined: all None for an instance still building).
COLUMNS = (*instance_mappings.c, *JOINED_COLUMNS)
#: where the cell's columns start in a row of COLUMNS
_CELL = len(instance_mappings.c)


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceMapping:
    """Which cell an instance lives in (``cell_mapping`` None: still building)."""

    id: int
    instance_uuid: str
    cell_mapping: CellMapping | None
    project_id: str
    user_id: str | None = None
    queued_for_delete: bool = False
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    @property
    def cell_uuid(self) -> str | None:
        return self.cell_mapping.uuid if self.cell_mapping is not None else None

    @classmethod
    def from_row(cls, row: Row[Any]) -> InstanceMapping:
        """The record of a row of :data:`COLUMNS` (the mapping joined with its cell).

        Read by position: the hot lookup's row layout is fixed by COLUMNS.
        """
        values = tuple(row)
        id_, instance_uuid, cell_id, project_id, user_id, queued, created, updated = values[:_CELL]
        return cls(
            id_,
            instance_uuid,
            CellMapping.from_values(values[_CELL:]) if cell_id is not None else None,
            project_id,
            user_id,
            bool(queued),
            created,
            updated,
        )

    # -- reading ------------------------------------------------------------

    @classmethod
    def get_by_instance_uuid(cls, ctx: object, instance_uuid: str) -> InstanceMapping:
        return mapping_index().instance(instance_uuid)

    @classmethod
    def get_by_instance_uuids(
        cls, ctx: object, instance_uuids: Iterable[str]
    ) -> list[InstanceMapping]:
        """The mappings that exist for ``instance_uuids`` (cached ones, then one query
        per 500 uuids for the rest)."""
        return list(mapping_index().instances(instance_uuids))

    @classmethod
    def get_by_cell(
        cls, ctx: object, cell_uuid: str, limit: int | None = None, after_id: int | None = None
    ) -> list[InstanceMapping]:
        """The cell's mappings in id order, ``limit`` at a time after ``after_id``."""
        return mapping_store().instances_in_cell(cell_uuid, limit=limit, after_id=after_id)

    @classmethod
    def get_by_project(cls, ctx: object, project_id: str) -> list[InstanceMapping]:
        return mapping_store().instances_of_project(project_id)

    @classmethod
    def count_by_cell(cls, ctx: object, cell_uuid: str) -> int:
        return mapping_store().count_instances(cell_uuid)

    # -- writing ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        ctx: object,
        *,
        instance_uuid: str,
        project_id: str,
        user_id: str | None = None,
        cell_mapping: CellMapping | None = None,
        queued_for_delete: bool = False,
    ) -> InstanceMapping:
        return mapping_store().create_instance(
            instance_uuid=instance_uuid,
            project_id=project_id,
            user_id=user_id,
            cell=cell_mapping,
            queued_for_delete=queued_for_delete,
        )

    def set_cell(self, ctx: object, cell_mapping: CellMapping) -> InstanceMapping:
        """Record that the instance now lives in ``cell_mapping``."""
        mapping_store().set_instance_cell(self.instance_uuid, cell_mapping)
        return dataclasses.replace(self, cell_mapping=cell_mapping)

    def set_queued_for_delete(self, ctx: object, queued: bool = True) -> InstanceMapping:
        mapping_store().set_queued_for_delete(self.instance_uuid, queued)
        return dataclasses.replace(self, queued_for_delete=queued)

    def destroy(self, ctx: object) -> None:
        mapping_store().delete_instance(self.instance_uuid)

    @staticmethod
    def destroy_many(ctx: object, instance_uuids: Iterable[str]) -> int:
        """Delete the mappings of ``instance_uuids`` in one transaction; returns how many."""
        return mapping_store().delete_instances(instance_uuids)
