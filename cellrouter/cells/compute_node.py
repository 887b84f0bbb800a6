"""Compute services and compute nodes in a cell's database: register, read, account usage.

A compute agent calls :func:`register_compute_node` when it starts, in its
own cell (an untargeted context, or one targeted at its cell): that writes
the ``services`` row (binary ``cellrouter-compute``) and the
``compute_nodes`` row that :func:`cellrouter.command.discover_hosts` reads,
so the host gets mapped to the cell. A scheduler reads the nodes' capacity
with :func:`get_compute_nodes`; the agent records what its instances use
with :func:`add_compute_usage`. Nothing here touches the API database.
"""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cellrouter import exception
from cellrouter.db.cell_schema import compute_nodes, services
from cellrouter.db.types import utcnow

if TYPE_CHECKING:
    from cellrouter.cells.context import RequestContext

__all__ = [
    "COMPUTE_BINARY",
    "ComputeNode",
    "add_compute_usage",
    "get_compute_nodes",
    "register_compute_node",
]

#: The service binary of a cellrouter compute agent (host discovery knows it).
COMPUTE_BINARY = "cellrouter-compute"


@dataclasses.dataclass(frozen=True, slots=True)
class ComputeNode:
    """One live compute node of a cell: where it is, what it has, what is used."""

    uuid: str
    host: str
    hypervisor_hostname: str
    service_id: int | None
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    #: host discovery mapped the node's host to this cell already
    mapped: bool

    @property
    def free(self) -> tuple[int, int, int]:
        """(vcpus, memory_mb, local_gb) still free."""
        return (
            self.vcpus - self.vcpus_used,
            self.memory_mb - self.memory_mb_used,
            self.local_gb - self.local_gb_used,
        )

    def fits(self, vcpus: int, memory_mb: int, local_gb: int) -> bool:
        """Whether a guest of this size fits in what is still free."""
        free_vcpus, free_memory, free_disk = self.free
        return vcpus <= free_vcpus and memory_mb <= free_memory and local_gb <= free_disk


_NODE_COLUMNS = (
    compute_nodes.c.uuid,
    compute_nodes.c.host,
    compute_nodes.c.hypervisor_hostname,
    compute_nodes.c.service_id,
    compute_nodes.c.vcpus,
    compute_nodes.c.memory_mb,
    compute_nodes.c.local_gb,
    compute_nodes.c.vcpus_used,
    compute_nodes.c.memory_mb_used,
    compute_nodes.c.local_gb_used,
    compute_nodes.c.mapped,
)


def _node(row: Any) -> ComputeNode:
    m = row._mapping
    return ComputeNode(**{column.name: m[column.name] for column in _NODE_COLUMNS})


def _check_size(**values: object) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise exception.InvalidValue(what=name, reason=f"a whole number >= 0, not {value!r}")


def register_compute_node(
    cctx: RequestContext,
    host: str,
    *,
    vcpus: int,
    memory_mb: int,
    local_gb: int,
    hypervisor_hostname: str | None = None,
    binary: str = COMPUTE_BINARY,
    topic: str = "compute",
) -> ComputeNode:
    """Register (or refresh) ``host``'s compute service and node in ``cctx``'s cell.

    Idempotent: a restarted agent updates its service's ``last_seen_up`` and
    ``report_count`` and its node's capacity; usage and the ``mapped`` flag
    are kept. ``hypervisor_hostname`` defaults to ``host``. Returns the node.
    """
    exception.InvalidValue.require(host=host, binary=binary, topic=topic)
    _check_size(vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb)
    node_name = hypervisor_hostname or host
    now = utcnow()
    live_service = sa.and_(
        services.c.host == host, services.c.binary == binary, services.c.deleted == 0
    )
    live_node = sa.and_(
        compute_nodes.c.host == host,
        compute_nodes.c.hypervisor_hostname == node_name,
        compute_nodes.c.deleted == 0,
    )
    with cctx.engine.begin() as conn:
        service_id = conn.scalar(sa.select(services.c.id).where(live_service))
        if service_id is None:
            inserted = conn.execute(
                sa.insert(services).values(
                    uuid=str(uuidlib.uuid4()),
                    host=host,
                    binary=binary,
                    topic=topic,
                    report_count=1,
                    last_seen_up=now,
                    created_at=now,
                )
            )
            service_id = inserted.inserted_primary_key[0]  # type: ignore[index]
        else:
            conn.execute(
                sa.update(services)
                .where(services.c.id == service_id)
                .values(report_count=services.c.report_count + 1, last_seen_up=now, updated_at=now)
            )
        capacity = {"vcpus": vcpus, "memory_mb": memory_mb, "local_gb": local_gb}
        updated = conn.execute(
            sa.update(compute_nodes)
            .where(live_node)
            .values(service_id=service_id, updated_at=now, **capacity)
        ).rowcount
        if not updated:
            conn.execute(
                sa.insert(compute_nodes).values(
                    uuid=str(uuidlib.uuid4()),
                    service_id=service_id,
                    host=host,
                    hypervisor_hostname=node_name,
                    hypervisor_type="fake",
                    created_at=now,
                    **capacity,
                )
            )
        row = conn.execute(sa.select(*_NODE_COLUMNS).where(live_node)).one()
    return _node(row)


def get_compute_nodes(
    cctx: RequestContext, hosts: Sequence[str] | None = None
) -> list[ComputeNode]:
    """The live compute nodes of ``cctx``'s cell (of ``hosts`` only, if given), by host."""
    stmt = sa.select(*_NODE_COLUMNS).where(compute_nodes.c.deleted == 0)
    if hosts is not None:
        stmt = stmt.where(compute_nodes.c.host.in_(list(hosts)))
    stmt = stmt.order_by(compute_nodes.c.host, compute_nodes.c.hypervisor_hostname)
    with cctx.engine.connect() as conn:
        return [_node(row) for row in conn.execute(stmt)]


def add_compute_usage(
    cctx: RequestContext,
    host: str,
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    local_gb: int = 0,
    hypervisor_hostname: str | None = None,
) -> None:
    """Add to (negative: take from) the usage of ``host``'s node, in one UPDATE.

    Usage never goes below zero. Raises
    :class:`~cellrouter.exception.InvalidValue` when the host has no live node
    in the cell.
    """
    deltas = {"vcpus": vcpus, "memory_mb": memory_mb, "local_gb": local_gb}
    for name, value in deltas.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise exception.InvalidValue(what=name, reason=f"a whole number, not {value!r}")
    values: dict[str, Any] = {
        f"{name}_used": sa.func.max(compute_nodes.c[f"{name}_used"] + delta, 0)
        if cctx.engine.dialect.name == "sqlite"
        else sa.func.greatest(compute_nodes.c[f"{name}_used"] + delta, 0)
        for name, delta in deltas.items()
    }
    stmt = (
        sa.update(compute_nodes)
        .where(
            compute_nodes.c.host == host,
            compute_nodes.c.hypervisor_hostname == (hypervisor_hostname or host),
            compute_nodes.c.deleted == 0,
        )
        .values(updated_at=utcnow(), **values)
    )
    with cctx.engine.begin() as conn:
        if conn.execute(stmt).rowcount == 0:
            raise exception.InvalidValue(
                what="host", reason=f"{host!r} has no compute node in this cell"
            )
