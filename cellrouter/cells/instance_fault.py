"""Instance faults: why an instance went to ERROR, kept in its cell next to it.

A conductor that could not schedule an instance records the fault in cell0
where it buries it; a compute agent whose build failed records it in its
cell. The API shows the newest fault with the instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cellrouter import exception
from cellrouter.db.cell_schema import instance_faults
from cellrouter.db.types import utcnow

if TYPE_CHECKING:
    from cellrouter.cells.context import RequestContext

__all__ = ["get_instance_faults", "record_instance_fault"]

_MESSAGE_LENGTH = 255


def record_instance_fault(
    cctx: RequestContext,
    instance_uuid: str,
    *,
    code: int,
    message: str,
    details: str | None = None,
    host: str | None = None,
) -> None:
    """Record a fault of ``instance_uuid`` in ``cctx``'s cell (message cut to 255 characters)."""
    exception.InvalidValue.require(instance_uuid=instance_uuid, message=message)
    if isinstance(code, bool) or not isinstance(code, int):
        raise exception.InvalidValue(what="code", reason=f"an HTTP-like status, not {code!r}")
    with cctx.engine.begin() as conn:
        conn.execute(
            sa.insert(instance_faults).values(
                instance_uuid=instance_uuid,
                code=code,
                message=message[:_MESSAGE_LENGTH],
                details=details,
                host=host,
                created_at=utcnow(),
            )
        )


def get_instance_faults(
    cctx: RequestContext, instance_uuid: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """The live faults of ``instance_uuid`` in ``cctx``'s cell, newest first."""
    f = instance_faults
    stmt = (
        sa.select(f.c.code, f.c.message, f.c.details, f.c.host, f.c.created_at)
        .where(f.c.instance_uuid == instance_uuid, f.c.deleted == 0)
        .order_by(f.c.created_at.desc(), f.c.id.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with cctx.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]
