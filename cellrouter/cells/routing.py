"""Routing a request for an instance to its (database, queue, host).

The three-tuple lookup of the cells v2 design: the instance mapping gives the
cell (database and queue), the instance's row in that cell gives the host,
and RPC goes to ``compute.<host>`` on that cell's queue.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cellrouter import exception
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.index import mapping_index
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping

__all__ = [
    "COMPUTE_TOPIC",
    "Route",
    "call_instance",
    "cast_instance",
    "compute_topic",
    "route_instance",
]

COMPUTE_TOPIC = "compute"


def compute_topic(host: str) -> tuple[str, str]:
    """(topic, server) a compute service on ``host`` listens on."""
    return COMPUTE_TOPIC, host


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Where an instance lives: its cell and its compute host (None: not on a host)."""

    cell_mapping: CellMapping
    host: str | None

    @property
    def cell_uuid(self) -> str:
        return self.cell_mapping.uuid


def route_instance(ctx: RequestContext, instance_uuid: str) -> Route:
    """Resolve ``instance_uuid`` to its cell and host.

    Raises InstanceMappingNotFound (unknown instance), InstanceNotScheduled
    (still building: the mapping has no cell yet) or InstanceNotFound (mapped,
    but not in its cell).
    """
    mapping = InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
    cell = mapping.cell_mapping
    if cell is None:
        raise exception.InstanceNotScheduled(uuid=instance_uuid)
    try:
        with target_cell(ctx, cell) as cctx:
            row = get_instance(cctx, instance_uuid, columns=("host",))
    except exception.InstanceNotFound:
        # A cached mapping may be stale (the instance moved, or the mapping is
        # gone): ask the API database before saying the instance is not there.
        fresh = mapping_index().refresh_instance(instance_uuid).cell_mapping
        if fresh is None:
            raise exception.InstanceNotScheduled(uuid=instance_uuid) from None
        if fresh.uuid == cell.uuid and fresh.database_connection == cell.database_connection:
            raise
        cell = fresh
        with target_cell(ctx, cell) as cctx:
            row = get_instance(cctx, instance_uuid, columns=("host",))
    return Route(cell_mapping=cell, host=row["host"])


def _client(ctx: RequestContext, route: Route, instance_uuid: str, **kw: Any) -> Any:
    if route.host is None:
        raise exception.InstanceNotOnHost(uuid=instance_uuid, cell=route.cell_mapping.identity)
    with target_cell(ctx, route.cell_mapping) as cctx:
        return cctx.rpc_client(COMPUTE_TOPIC, server=route.host, **kw)


def cast_instance(ctx: RequestContext, instance_uuid: str, method: str, **kwargs: Any) -> Route:
    """Cast ``method(**kwargs)`` to the compute host of the instance; returns the route.

    Raises what :func:`route_instance` raises, InstanceNotOnHost when the
    instance has no compute host and CellHasNoQueue when its cell has no queue.
    """
    route = route_instance(ctx, instance_uuid)
    _client(ctx, route, instance_uuid).cast(
        ctx.to_dict(), method, instance_uuid=instance_uuid, **kwargs
    )
    return route


def call_instance(
    ctx: RequestContext,
    instance_uuid: str,
    method: str,
    timeout: float | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``method(**kwargs)`` on the instance's compute host and return its result.

    Raises what :func:`cast_instance` raises, and oslo.messaging's
    MessagingTimeout when no answer comes in ``timeout``.
    """
    route = route_instance(ctx, instance_uuid)
    kw = {} if timeout is None else {"timeout": timeout}
    client = _client(ctx, route, instance_uuid, **kw)
    return client.call(ctx.to_dict(), method, instance_uuid=instance_uuid, **kwargs)
