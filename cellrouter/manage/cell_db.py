"""What the operator verbs read and change in a cell's own database (the index
is :mod:`cellrouter.index.store`'s): live instances and compute nodes, the
schema revision and counts ``cell_v2 status`` shows, and whether a new cell's
database can be reached at all.

A cell database that fails raises
:class:`~cellrouter.exception.CellUnavailable` naming the cell (masked), never
a driver error; one that does not exist on its server raises
:class:`~cellrouter.exception.CellDatabaseMissing`, naming the database to create.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import sqlalchemy as sa

from cellrouter.across.probes import probe_database
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.conf import get_conf
from cellrouter.db import bulk, dberror
from cellrouter.db.cell_schema import compute_nodes, instances, shadow
from cellrouter.db.engine import create_engine, parse_db_url
from cellrouter.db.two_phase import CellStep
from cellrouter.exception import CellDatabaseMissing, CellUnavailable, InvalidURL
from cellrouter.index.cell_mapping import CellMapping

__all__ = [
    "CellReadout",
    "count_live_compute_nodes",
    "count_live_instances",
    "database_problem",
    "missing_database",
    "reaching",
    "read_cell",
    "unflag_nodes",
]


def missing_database(cell: CellMapping) -> CellDatabaseMissing:
    """The error for ``cell``'s database not existing: names the database to create."""
    name = parse_db_url(cell.database_connection).database or ""
    return CellDatabaseMissing(cell=cell.identity, uuid=cell.uuid, what="database", database=name)


@contextlib.contextmanager
def reaching(cell: CellMapping) -> Iterator[None]:
    """Turn a failure to reach ``cell``'s database into CellUnavailable (masked);
    a database that does not exist into :func:`missing_database`'s error."""
    try:
        yield
    except CellUnavailable as exc:
        if dberror.is_missing_database(exc):
            raise missing_database(cell) from None
        raise
    except (sa.exc.DBAPIError, InvalidURL) as exc:
        if dberror.is_missing_database(exc):
            raise missing_database(cell) from None
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


def is_archived(ctx: RequestContext, cell: CellMapping, instance_uuid: str) -> bool:
    """Whether ``cell``'s shadow table holds the instance (``db archive_deleted_rows`` moved it)."""
    table = shadow(instances)
    stmt = sa.select(table.c.id).where(table.c.uuid == instance_uuid).limit(1)
    with target_cell(ctx, cell) as cctx, cctx.engine.connect() as conn:
        return conn.execute(stmt).first() is not None


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


def database_problem(url: str) -> str | None:
    """Why ``url`` cannot be opened now (masked, one line), or None when it can.

    Bounded by ``[cells]/db_connect_timeout``. A SQLite file that does not
    exist yet is fine (the first migration creates it) unless its directory
    is missing too.
    """
    try:
        parsed = parse_db_url(url)
    except InvalidURL as exc:
        return str(exc)
    path = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and path != ":memory:" and not os.path.exists(path):
        if not path:
            return None  # in memory
        directory = os.path.dirname(os.path.abspath(path))
        return None if os.path.isdir(directory) else f"directory {directory} does not exist"
    probe = probe_database(url, float(get_conf().cells.db_connect_timeout))
    return probe.error if probe.failed else None


@dataclasses.dataclass(frozen=True, slots=True)
class CellReadout:
    """What ``cell_v2 status`` reads in one cell's database: its schema revision
    (None: no schema) and, when asked, its live compute hosts and instances."""

    revision: str | None
    hosts: int | None = None
    instances: int | None = None


def read_cell(cell: CellMapping, counts: bool = False) -> CellReadout:
    """``cell``'s cell-schema revision and, with ``counts``, its live compute hosts
    and instances, on one bounded connection. Failures raise CellUnavailable (masked)."""
    from cellrouter.db import migration  # alembic: only for the commands that need it

    with reaching(cell):
        engine = create_engine(cell.database_connection, pooled=False)
        try:
            with engine.connect() as conn:
                revision = migration.current("cell", conn)
                if not counts or revision is None:
                    return CellReadout(revision)
                hosts = conn.execute(
                    sa.select(sa.func.count(sa.distinct(compute_nodes.c.host))).where(
                        compute_nodes.c.deleted == 0
                    )
                ).scalar_one()
                live = conn.execute(_count(instances, instances.c.deleted == 0)).scalar_one()
                return CellReadout(revision, hosts, live)
        finally:
            engine.dispose()
