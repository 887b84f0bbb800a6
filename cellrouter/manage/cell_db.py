"""What the operator verbs read and change in a cell's own database (the index
is :mod:`cellrouter.index.store`'s): live instances and compute nodes.

A cell database that fails raises
:class:`~cellrouter.exception.CellUnavailable` naming the cell (masked), never
a driver error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.db import bulk
from cellrouter.db.cell_schema import compute_nodes, instances
from cellrouter.db.two_phase import CellStep
from cellrouter.exception import InvalidURL
from cellrouter.index.cell_mapping import CellMapping

__all__ = ["count_live_compute_nodes", "count_live_instances", "reaching", "unflag_nodes"]


@contextlib.contextmanager
def reaching(cell: CellMapping) -> Iterator[None]:
    """Turn a failure to reach ``cell``'s database into CellUnavailable (masked)."""
    try:
        yield
    except (sa.exc.DBAPIError, InvalidURL) as exc:
        raise bulk.cell_unavailable(cell.identity, exc) from None


def _count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.Select[int]:
    return sa.select(sa.func.count()).select_from(table).where(*where)


def count_live_instances(ctx: RequestContext, cell: CellMapping, host: str | None = None) -> int:
    """How many instances ``cell`` holds that are not (soft-)deleted, on ``host`` or anywhere."""
    where = [instances.c.deleted == 0]
    if host is not None:
        where.append(instances.c.host == host)
    with reaching(cell), target_cell(ctx, cell) as cctx, cctx.engine.connect() as conn:
        return conn.execute(_count(instances, *where)).scalar_one()


def count_live_compute_nodes(ctx: RequestContext) -> int:
    """How many compute nodes ``[database]/connection`` (this service's cell) has."""
    try:
        with ctx.engine.connect() as conn:
            return conn.execute(_count(compute_nodes, compute_nodes.c.deleted == 0)).scalar_one()
    except sa.exc.DBAPIError as exc:
        raise bulk.cell_unavailable("[database]/connection", exc) from None


def unflag_nodes(ctx: RequestContext, cell: CellMapping, host: str | None = None) -> CellStep:
    """The cell step of unmapping hosts: clear ``mapped`` on the compute nodes of ``host``
    (or of every host) in ``cell``, so discovery can map them again (see
    :mod:`cellrouter.db.two_phase` for why it commits before the API database)."""
    where = [compute_nodes.c.mapped == sa.true()]
    if host is not None:
        where.append(compute_nodes.c.host == host)
    reset = sa.update(compute_nodes).where(*where).values(mapped=False)
    with reaching(cell), target_cell(ctx, cell) as cctx:
        engine = cctx.engine
    return CellStep(cell.identity, engine, lambda conn: conn.execute(reset))
