"""Host mappings: compute host name -> cell, in the API database.

The scheduler may only place instances on mapped hosts; discovery
(:mod:`cellrouter.manage.discovery`) creates these in bulk.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import exception
from cellrouter.db.api_schema import cell_mappings, host_mappings
from cellrouter.db.database import api_engine
from cellrouter.db.types import utcnow
from cellrouter.index import events
from cellrouter.index.cell_mapping import JOINED_COLUMNS, CellMapping

__all__ = ["HostMapping"]

_SELECT = sa.select(host_mappings, *JOINED_COLUMNS).select_from(
    host_mappings.join(cell_mappings, host_mappings.c.cell_id == cell_mappings.c.id)
)

_BY_HOST = _SELECT.where(host_mappings.c.host == sa.bindparam("host"))


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
        m = row._mapping
        return cls(
            id=m["id"],
            host=m["host"],
            cell_mapping=CellMapping.from_row(row, "cm_"),
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )

    @classmethod
    def _select_all(
        cls, stmt: sa.Select[Any], params: dict[str, Any] | None = None
    ) -> list[HostMapping]:
        with api_engine().connect() as conn:
            return [cls.from_row(row) for row in conn.execute(stmt, params)]

    @classmethod
    def get_by_host(cls, ctx: object, host: str) -> HostMapping:
        found = cls._select_all(_BY_HOST, {"host": host})
        if not found:
            raise exception.HostMappingNotFound(host=host)
        return found[0]

    @classmethod
    def get_all(cls, ctx: object) -> list[HostMapping]:
        return cls._select_all(_SELECT.order_by(host_mappings.c.host))

    @classmethod
    def get_by_cell(cls, ctx: object, cell_uuid: str) -> list[HostMapping]:
        return cls._select_all(
            _SELECT.where(cell_mappings.c.uuid == cell_uuid).order_by(host_mappings.c.host)
        )

    @classmethod
    def create(cls, ctx: object, *, host: str, cell_mapping: CellMapping) -> HostMapping:
        exception.InvalidValue.require(host=host)
        now = utcnow()
        try:
            with api_engine().begin() as conn:
                result = conn.execute(
                    sa.insert(host_mappings).values(
                        host=host, cell_id=cell_mapping.id, created_at=now
                    )
                )
        except sa.exc.IntegrityError:
            try:
                existing = cls.get_by_host(ctx, host).cell_mapping.identity
            except exception.HostMappingNotFound:  # the cell vanished meanwhile
                raise exception.CellMappingNotFound(uuid=cell_mapping.uuid) from None
            raise exception.HostMappingExists(host=host, cell=existing) from None
        events.mapping_changed("host", (host,))
        return cls(
            id=result.inserted_primary_key[0], host=host, cell_mapping=cell_mapping, created_at=now
        )

    def destroy(self, ctx: object) -> None:
        with api_engine().begin() as conn:
            result = conn.execute(sa.delete(host_mappings).where(host_mappings.c.host == self.host))
        if result.rowcount == 0:
            raise exception.HostMappingNotFound(host=self.host)
        events.mapping_changed("host", (self.host,))
