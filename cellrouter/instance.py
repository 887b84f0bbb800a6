"""Reading instance rows from the cell a context is targeted at."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from cellrouter import exception
from cellrouter.cell_schema import instances

if TYPE_CHECKING:
    from cellrouter.context import RequestContext

__all__ = ["deleted_filter", "get_instance"]


def deleted_filter(
    ctx: RequestContext, table: sa.Table = instances
) -> sa.ColumnElement[bool] | None:
    """The soft-delete condition ``ctx.read_deleted`` asks for (None: no condition)."""
    if ctx.read_deleted == "no":
        return table.c.deleted == 0
    if ctx.read_deleted == "only":
        return table.c.deleted != 0
    return None


def get_instance(
    cctx: RequestContext, instance_uuid: str, columns: Sequence[str] | None = None
) -> RowMapping:
    """The instance's row (or the given columns of it) in ``cctx``'s cell."""
    cols: Sequence[Any] = [instances.c[name] for name in columns] if columns else [instances]
    stmt = sa.select(*cols).where(instances.c.uuid == instance_uuid)
    condition = deleted_filter(cctx)
    if condition is not None:
        stmt = stmt.where(condition)
    with cctx.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        cell = cctx.cell_mapping.identity if cctx.cell_mapping is not None else "local"
        raise exception.InstanceNotFound(uuid=instance_uuid, cell=cell)
    return row
