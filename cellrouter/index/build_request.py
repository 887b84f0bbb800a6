"""Build requests: what the API keeps for an instance that is not in a cell yet.

Between the API accepting a boot and the super conductor placing the
instance in a cell (or burying it in cell0), the instance exists only here
and as an instance mapping without a cell.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import exception
from cellrouter.db.api_schema import build_requests
from cellrouter.db.database import api_engine
from cellrouter.db.types import utcnow

__all__ = ["BuildRequest"]


@dataclasses.dataclass(frozen=True, slots=True)
class BuildRequest:
    """An instance that is being built; ``instance`` is its serialized form."""

    id: int
    instance_uuid: str
    project_id: str
    instance: str | None = None
    block_device_mappings: str | None = None
    tags: str | None = None
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> BuildRequest:
        return cls(**{f.name: row._mapping[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def get_by_instance_uuid(cls, ctx: object, instance_uuid: str) -> BuildRequest:
        with api_engine().connect() as conn:
            row = conn.execute(
                sa.select(build_requests).where(build_requests.c.instance_uuid == instance_uuid)
            ).first()
        if row is None:
            raise exception.BuildRequestNotFound(uuid=instance_uuid)
        return cls.from_row(row)

    @classmethod
    def get_all(cls, ctx: object, project_id: str | None = None) -> list[BuildRequest]:
        stmt = sa.select(build_requests).order_by(build_requests.c.id)
        if project_id is not None:
            stmt = stmt.where(build_requests.c.project_id == project_id)
        with api_engine().connect() as conn:
            return [cls.from_row(row) for row in conn.execute(stmt)]

    @classmethod
    def create(
        cls,
        ctx: object,
        *,
        instance_uuid: str,
        project_id: str,
        instance: str | None = None,
        block_device_mappings: str | None = None,
        tags: str | None = None,
    ) -> BuildRequest:
        exception.InvalidValue.require(instance_uuid=instance_uuid, project_id=project_id)
        values: dict[str, Any] = {
            "instance_uuid": instance_uuid,
            "project_id": project_id,
            "instance": instance,
            "block_device_mappings": block_device_mappings,
            "tags": tags,
            "created_at": utcnow(),
            "updated_at": None,
        }
        try:
            with api_engine().begin() as conn:
                result = conn.execute(sa.insert(build_requests).values(values))
        except sa.exc.IntegrityError:
            raise exception.BuildRequestExists(uuid=instance_uuid) from None
        return cls(id=result.inserted_primary_key[0], **values)

    def destroy(self, ctx: object) -> None:
        with api_engine().begin() as conn:
            result = conn.execute(
                sa.delete(build_requests).where(
                    build_requests.c.instance_uuid == self.instance_uuid
                )
            )
        if result.rowcount == 0:
            raise exception.BuildRequestNotFound(uuid=self.instance_uuid)
