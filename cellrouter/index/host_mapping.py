"""Host mappings: compute host name -> cell, in the API database.

The scheduler may only place instances on mapped hosts; discovery
(:mod:`cellrouter.manage.discovery`) creates these in bulk. Reads and writes
are :mod:`cellrouter.index.store`'s; the classmethods here call it.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from sqlalchemy.engine import Row

from cellrouter.db.api_schema import host_mappings
from cellrouter.index import mapping_index, mapping_store
from cellrouter.index.cell_mapping import JOINED_COLUMNS, CellMapping

__all__ = ["COLUMNS", "HostMapping"]

#: The row layout :meth:`HostMapping.from_row` reads: the mapping's columns, then its cell's.
COLUMNS = (*host_mappings.c, *JOINED_COLUMNS)


@dataclasses.dataclass(frozen=True, slots=True)
class HostMapping:
    """Which cell a compute host belongs to."""

    id: int
    host: str
    cell_mapping: CellMapping
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> HostMapping:
        """The record of a row of :data:`COLUMNS`."""
        m = row._mapping
        return cls(
            id=m["id"],
            host=m["host"],
            cell_mapping=CellMapping.from_row(row, "cm_"),
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )

    @classmethod
    def get_by_host(cls, ctx: object, host: str) -> HostMapping:
        return mapping_index().host(host)

    @classmethod
    def get_all(cls, ctx: object) -> list[HostMapping]:
        return mapping_store().hosts()

    @classmethod
    def get_by_cell(cls, ctx: object, cell_uuid: str) -> list[HostMapping]:
        return mapping_store().hosts_in_cell(cell_uuid)

    @classmethod
    def create(cls, ctx: object, *, host: str, cell_mapping: CellMapping) -> HostMapping:
        return mapping_store().create_host(host, cell_mapping)

    def destroy(self, ctx: object) -> None:
        mapping_store().delete_host(self.host)
