"""Instance mappings: instance uuid -> cell, in the API database.

This is where an instance's cell gets resolved. A mapping whose cell is None
belongs to an instance that is still being built (not scheduled yet). Lookups
join the cell in the same query, so resolving an instance costs one round
trip to the API database.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import exception
from cellrouter.db.api_schema import cell_mappings, instance_mappings
from cellrouter.db.bulk import chunks
from cellrouter.db.database import api_engine
from cellrouter.db.types import utcnow
from cellrouter.index import events
from cellrouter.index.cell_mapping import JOINED_COLUMNS, CellMapping

__all__ = ["InstanceMapping"]

_SELECT = sa.select(instance_mappings, *JOINED_COLUMNS).select_from(
    instance_mappings.outerjoin(cell_mappings, instance_mappings.c.cell_id == cell_mappings.c.id)
)
#: where the cell's columns start in a row of _SELECT
_CELL = len(instance_mappings.c)


# Hot lookups are built once: a reused statement's cache key is memoized, which
# is most of the cost of a one-row select.
_BY_UUID = _SELECT.where(instance_mappings.c.instance_uuid == sa.bindparam("instance_uuid"))


def _cell_id(cell_uuid: str) -> sa.ScalarSelect[Any]:
    return sa.select(cell_mappings.c.id).where(cell_mappings.c.uuid == cell_uuid).scalar_subquery()


def _cell_exists(cell_id: int) -> bool:
    with api_engine().connect() as conn:
        stmt = sa.select(cell_mappings.c.id).where(cell_mappings.c.id == cell_id)
        return conn.execute(stmt).first() is not None


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
        """The record of a row of ``_SELECT`` (the mapping joined with its cell).

        Read by position: the hot lookup's row layout is fixed by ``_SELECT``.
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
    def _select_all(cls, stmt: sa.Select[Any]) -> list[InstanceMapping]:
        with api_engine().connect() as conn:
            return [cls.from_row(row) for row in conn.execute(stmt)]

    @classmethod
    def get_by_instance_uuid(cls, ctx: object, instance_uuid: str) -> InstanceMapping:
        with api_engine().connect() as conn:
            row = conn.execute(_BY_UUID, {"instance_uuid": instance_uuid}).first()
        if row is None:
            raise exception.InstanceMappingNotFound(uuid=instance_uuid)
        return cls.from_row(row)

    @classmethod
    def get_by_instance_uuids(
        cls, ctx: object, instance_uuids: Iterable[str]
    ) -> list[InstanceMapping]:
        """The mappings that exist for ``instance_uuids`` (one query per 500 uuids)."""
        uuids = list(dict.fromkeys(instance_uuids))
        found: list[InstanceMapping] = []
        with api_engine().connect() as conn:
            for chunk in chunks(uuids):
                stmt = _SELECT.where(instance_mappings.c.instance_uuid.in_(chunk))
                found.extend(cls.from_row(row) for row in conn.execute(stmt))
        return found

    @classmethod
    def get_by_cell(
        cls, ctx: object, cell_uuid: str, limit: int | None = None, after_id: int | None = None
    ) -> list[InstanceMapping]:
        """The cell's mappings in id order, ``limit`` at a time after ``after_id``."""
        stmt = _SELECT.where(cell_mappings.c.uuid == cell_uuid).order_by(instance_mappings.c.id)
        if after_id is not None:
            stmt = stmt.where(instance_mappings.c.id > after_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return cls._select_all(stmt)

    @classmethod
    def get_by_project(cls, ctx: object, project_id: str) -> list[InstanceMapping]:
        return cls._select_all(
            _SELECT.where(instance_mappings.c.project_id == project_id).order_by(
                instance_mappings.c.id
            )
        )

    @classmethod
    def count_by_cell(cls, ctx: object, cell_uuid: str) -> int:
        stmt = (
            sa.select(sa.func.count())
            .select_from(instance_mappings)
            .where(instance_mappings.c.cell_id == _cell_id(cell_uuid))
        )
        with api_engine().connect() as conn:
            return int(conn.execute(stmt).scalar_one())

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
        exception.InvalidValue.require(instance_uuid=instance_uuid, project_id=project_id)
        now = utcnow()
        values: dict[str, Any] = {
            "instance_uuid": instance_uuid,
            "project_id": project_id,
            "user_id": user_id,
            "queued_for_delete": queued_for_delete,
            "created_at": now,
            "cell_id": cell_mapping.id if cell_mapping is not None else None,
        }
        try:
            with api_engine().begin() as conn:
                result = conn.execute(sa.insert(instance_mappings).values(values))
        except sa.exc.IntegrityError:
            if cell_mapping is not None and not _cell_exists(cell_mapping.id):
                raise exception.CellMappingNotFound(uuid=cell_mapping.uuid) from None
            raise exception.InstanceMappingExists(uuid=instance_uuid) from None
        events.mapping_changed("instance", (instance_uuid,))
        return cls(
            id=result.inserted_primary_key[0],
            instance_uuid=instance_uuid,
            cell_mapping=cell_mapping,
            project_id=project_id,
            user_id=user_id,
            queued_for_delete=queued_for_delete,
            created_at=now,
        )

    def _update(self, values: dict[str, Any]) -> None:
        values["updated_at"] = utcnow()
        with api_engine().begin() as conn:
            result = conn.execute(
                sa.update(instance_mappings)
                .where(instance_mappings.c.instance_uuid == self.instance_uuid)
                .values(values)
            )
        if result.rowcount == 0:
            raise exception.InstanceMappingNotFound(uuid=self.instance_uuid)
        events.mapping_changed("instance", (self.instance_uuid,))

    def set_cell(self, ctx: object, cell_mapping: CellMapping) -> InstanceMapping:
        """Record that the instance now lives in ``cell_mapping``."""
        try:
            self._update({"cell_id": cell_mapping.id})
        except sa.exc.IntegrityError:
            raise exception.CellMappingNotFound(uuid=cell_mapping.uuid) from None
        return dataclasses.replace(self, cell_mapping=cell_mapping)

    def set_queued_for_delete(self, ctx: object, queued: bool = True) -> InstanceMapping:
        self._update({"queued_for_delete": queued})
        return dataclasses.replace(self, queued_for_delete=queued)

    def destroy(self, ctx: object) -> None:
        if InstanceMapping.destroy_many(ctx, [self.instance_uuid]) == 0:
            raise exception.InstanceMappingNotFound(uuid=self.instance_uuid)

    @staticmethod
    def destroy_many(ctx: object, instance_uuids: Iterable[str]) -> int:
        """Delete the mappings of ``instance_uuids`` in one transaction; returns how many."""
        uuids = list(dict.fromkeys(instance_uuids))
        deleted = 0
        with api_engine().begin() as conn:
            for chunk in chunks(uuids):
                deleted += conn.execute(
                    sa.delete(instance_mappings).where(instance_mappings.c.instance_uuid.in_(chunk))
                ).rowcount
        if deleted:
            events.mapping_changed("instance", uuids)
        return deleted
