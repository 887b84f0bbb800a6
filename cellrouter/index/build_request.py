"""Build requests: what the API keeps for an instance that is not in a cell yet.

Between the API accepting a boot and the super conductor placing the
instance in a cell (or burying it in cell0), the instance exists only here
and as an instance mapping without a cell. Reads and writes are
:mod:`cellrouter.index.store`'s; the classmethods here call it.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from sqlalchemy.engine import Row

from cellrouter.index import mapping_index, mapping_store

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
        return mapping_index().build_request(instance_uuid)

    @classmethod
    def get_all(cls, ctx: object, project_id: str | None = None) -> list[BuildRequest]:
        return mapping_store().build_requests(project_id)

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
        return mapping_store().create_build_request(
            instance_uuid=instance_uuid,
            project_id=project_id,
            instance=instance,
            block_device_mappings=block_device_mappings,
            tags=tags,
        )

    def destroy(self, ctx: object) -> None:
        mapping_store().delete_build_request(self.instance_uuid)
