"""Reading instance rows from the cell a context is targeted at."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from cellrouter import exception
from cellrouter.db.cell_schema import instances

if TYPE_CHECKING:
    from cellrouter.cells.context import RequestContext

__all__ = ["deleted_filter", "get_instance"]


def deleted_filter(
    ctx: RequestContext, table: sa.Table = instances
) -> sa.ColumnElement[bool] | None:
    """The soft-delete condition ``ctx.read_deleted`` asks for (None: no condition)."""
    return _deleted_condition(ctx.read_deleted, table)


def _deleted_condition(read_deleted: str, table: sa.Table) -> sa.ColumnElement[bool] | None:
    if read_deleted == "no":
        return table.c.deleted == 0
    if read_deleted == "only":
        return table.c.deleted != 0
    return None


# (columns, read_deleted) -> prepared statement; a reused statement's cache key
# is memoized by SQLAlchemy, which is most of the cost of a one-row select.
_statements: dict[tuple[tuple[str, ...] | None, str], sa.Select[Any]] = {}


def _get_statement(columns: tuple[str, ...] | None, read_deleted: str) -> sa.Select[Any]:
    key = (columns, read_deleted)
    stmt = _statements.get(key)
    if stmt is None:
        unknown = [name for name in columns or () if name not in instances.c]
        if unknown:
            raise exception.InvalidValue(what="instance column(s)", reason=", ".join(unknown))
        cols: Sequence[Any] = [instances.c[name] for name in columns] if columns else [instances]
        stmt = sa.select(*cols).where(instances.c.uuid == sa.bindparam("instance_uuid"))
        condition = _deleted_condition(read_deleted, instances)
        if condition is not None:
            stmt = stmt.where(condition)
        _statements[key] = stmt
    return stmt


def get_instance(
    cctx: RequestContext, instance_uuid: str, columns: Sequence[str] | None = None
) -> RowMapping:
    """The instance's row (or the given columns of it) in ``cctx``'s cell."""
    stmt = _get_statement(tuple(columns) if columns else None, cctx.read_deleted)
    with cctx.engine.connect() as conn:
        row = conn.execute(stmt, {"instance_uuid": instance_uuid}).first()
    if row is None:
        cell = cctx.cell_mapping.identity if cctx.cell_mapping is not None else "local"
        raise exception.InstanceNotFound(uuid=instance_uuid, cell=cell)
    return row._mapping
