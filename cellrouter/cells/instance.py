"""Instance rows in the cell a context is targeted at: read one, create, update, delete.

The writers are what a conductor (creating an instance in the cell it
scheduled to) and a compute agent (updating the instances of its host) need;
deletion is Nova's soft delete (``deleted`` set to the row's id).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from cellrouter import exception
from cellrouter.db.cell_schema import instances
from cellrouter.db.types import utcnow

if TYPE_CHECKING:
    from cellrouter.cells.context import RequestContext

__all__ = [
    "create_instance",
    "deleted_filter",
    "destroy_instance",
    "get_instance",
    "update_instance",
]

#: columns a caller may not set: the database and the soft delete own them
_MANAGED = frozenset({"id", "deleted", "deleted_at"})


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
        raise exception.InstanceNotFound(uuid=instance_uuid, cell=_cell_name(cctx))
    return row._mapping


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(name for name in values if name not in instances.c or name in _MANAGED)
    if unknown:
        raise exception.InvalidValue(what="instance column(s)", reason=", ".join(unknown))
    return values


def _cell_name(cctx: RequestContext) -> str:
    return cctx.cell_mapping.identity if cctx.cell_mapping is not None else "local"


def create_instance(cctx: RequestContext, **values: Any) -> str:
    """Insert an instance row in ``cctx``'s cell; returns its uuid (made when not given).

    ``values`` are columns of the cell's ``instances`` table (project_id,
    user_id, host, node, display_name, vm_state...); ``created_at`` defaults
    to now.
    """
    row = _columns(dict(values))
    row.setdefault("uuid", str(uuidlib.uuid4()))
    row.setdefault("created_at", utcnow())
    with cctx.engine.begin() as conn:
        conn.execute(sa.insert(instances).values(row))
    return str(row["uuid"])


def update_instance(cctx: RequestContext, instance_uuid: str, **values: Any) -> None:
    """Set columns of a live instance in ``cctx``'s cell (InstanceNotFound if it has none)."""
    changes = _columns(dict(values))
    changes.setdefault("updated_at", utcnow())
    stmt = (
        sa.update(instances)
        .where(instances.c.uuid == instance_uuid, instances.c.deleted == 0)
        .values(changes)
    )
    with cctx.engine.begin() as conn:
        if conn.execute(stmt).rowcount == 0:
            raise exception.InstanceNotFound(uuid=instance_uuid, cell=_cell_name(cctx))


def destroy_instance(cctx: RequestContext, instance_uuid: str) -> None:
    """Soft-delete a live instance in ``cctx``'s cell (InstanceNotFound if it has none)."""
    now = utcnow()
    stmt = (
        sa.update(instances)
        .where(instances.c.uuid == instance_uuid, instances.c.deleted == 0)
        .values(deleted=instances.c.id, deleted_at=now, updated_at=now)
    )
    with cctx.engine.begin() as conn:
        if conn.execute(stmt).rowcount == 0:
            raise exception.InstanceNotFound(uuid=instance_uuid, cell=_cell_name(cctx))
