"""Request contexts and cell targeting.

A :class:`RequestContext` carries who is asking; targeting it at a cell
attaches that cell's pooled engine and transport, so whatever runs with it
reaches the right database and queue. :func:`target_cell` hands out a
targeted copy and never modifies the caller's context.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

from sqlalchemy.engine import Engine

from cellrouter import exception
from cellrouter.cells import registry
from cellrouter.index.cell_mapping import CellMapping

__all__ = ["RequestContext", "get_admin_context", "set_target_cell", "target_cell"]

_READ_DELETED = ("no", "yes", "only")


class RequestContext:
    """Who is asking (user, project, admin), and which cell the request targets."""

    __slots__ = (
        "_conn",
        "cell_mapping",
        "is_admin",
        "project_id",
        "read_deleted",
        "request_id",
        "user_id",
    )

    def __init__(
        self,
        user_id: str | None = None,
        project_id: str | None = None,
        is_admin: bool = False,
        request_id: str | None = None,
        read_deleted: str = "no",
    ) -> None:
        if read_deleted not in _READ_DELETED:
            raise exception.InvalidValue(
                what="read_deleted", reason=f"one of {_READ_DELETED}, not {read_deleted!r}"
            )
        self.user_id = user_id
        self.project_id = project_id
        self.is_admin = is_admin
        self.request_id = request_id or f"req-{uuid.uuid4()}"
        self.read_deleted = read_deleted
        self.cell_mapping: CellMapping | None = None
        self._conn: registry.CellConnection | None = None

    def __repr__(self) -> str:
        return (
            f"RequestContext(user_id={self.user_id!r}, project_id={self.project_id!r}, "
            f"is_admin={self.is_admin!r}, request_id={self.request_id!r}, "
            f"cell={self.cell_uuid!r})"
        )

    @property
    def cell_uuid(self) -> str | None:
        """The targeted cell's uuid (None: untargeted, i.e. this service's own cell)."""
        mapping = self.cell_mapping
        return mapping.uuid if mapping is not None else None

    @property
    def _connection(self) -> registry.CellConnection:
        conn = self._conn
        return conn if conn is not None else registry.local()

    @property
    def engine(self) -> Engine:
        """The targeted cell's pooled engine (untargeted: ``[database]/connection``).

        Raises :class:`~cellrouter.exception.CellUnavailable` at once, without
        touching the network, while the cell is known down (cell health).
        """
        conn = self._conn
        return conn.request_engine() if conn is not None else registry.local().engine

    @property
    def transport(self) -> Any:
        """The targeted cell's transport (None for cell0, which has no queue)."""
        return self._connection.transport

    def rpc_client(self, topic: str, server: str | None = None, **kw: Any) -> Any:
        """An oslo.messaging RPC client for ``topic``/``server`` on the targeted cell."""
        return self._connection.rpc_client(topic, server, **kw)

    def rpc_server(
        self, topic: str, server: str, endpoints: list[Any], executor: str | None = "threading"
    ) -> Any:
        """An oslo.messaging RPC server for ``topic``/``server`` on the targeted cell's
        queue (untargeted: this service's own ``[DEFAULT]/transport_url``), not started.

        This is what a compute agent listens on: ``compute.<host>`` in its cell.
        """
        return self._connection.rpc_server(topic, server, endpoints, executor)

    def copy(self) -> RequestContext:
        """A shallow copy (cheap: the targeting is shared, not rebuilt)."""
        new = RequestContext.__new__(RequestContext)
        new.user_id = self.user_id
        new.project_id = self.project_id
        new.is_admin = self.is_admin
        new.request_id = self.request_id
        new.read_deleted = self.read_deleted
        new.cell_mapping = self.cell_mapping
        new._conn = self._conn
        return new

    def elevated(self, read_deleted: str | None = None) -> RequestContext:
        """An admin copy of this context."""
        new = self.copy()
        new.is_admin = True
        if read_deleted is not None:
            if read_deleted not in _READ_DELETED:
                raise exception.InvalidValue(what="read_deleted", reason=f"one of {_READ_DELETED}")
            new.read_deleted = read_deleted
        return new

    def to_dict(self) -> dict[str, Any]:
        """The caller's identity, e.g. to send along an RPC message."""
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "is_admin": self.is_admin,
            "request_id": self.request_id,
            "read_deleted": self.read_deleted,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RequestContext:
        keys = ("user_id", "project_id", "is_admin", "request_id", "read_deleted")
        return cls(**{key: values[key] for key in keys if key in values})


def get_admin_context(read_deleted: str = "no") -> RequestContext:
    """A context with admin rights and no user, for services and operators."""
    return RequestContext(is_admin=True, read_deleted=read_deleted)


def set_target_cell(ctx: RequestContext, cell_mapping: CellMapping | None) -> None:
    """Target ``ctx`` itself at ``cell_mapping`` (None: untarget it)."""
    if cell_mapping is None:
        ctx.cell_mapping = None
        ctx._conn = None
    else:
        ctx._conn = registry.get(cell_mapping)
        ctx.cell_mapping = cell_mapping


class target_cell:  # noqa: N801 - used like contextlib's lower-case managers
    """``with target_cell(ctx, cell) as cctx:`` a copy of ctx targeted at ``cell``."""

    __slots__ = ("_cctx",)

    def __init__(self, ctx: RequestContext, cell_mapping: CellMapping) -> None:
        cctx = ctx.copy()
        cctx._conn = registry.get(cell_mapping)
        cctx.cell_mapping = cell_mapping
        self._cctx = cctx

    def __enter__(self) -> RequestContext:
        return self._cctx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
