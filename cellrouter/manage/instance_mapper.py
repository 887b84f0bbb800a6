"""map_instances: create the missing instance mappings of a cell, in resumable batches.

What ``nova-manage cell_v2 map_instances`` does, without its traps: the
resume marker lives in its own table (``instance_mapping_markers``, one row
per cell, never a fake instance mapping), batches are set-based (one read
from the cell, one multi-row "insert, skip duplicates" into the API
database), and the marker moves in the same API transaction as the mappings
of its batch. Hence:

* idempotent: re-running never duplicates a mapping and never fails on one;
* crash-safe: after a kill at any moment a re-run continues from the last
  committed batch and maps every instance exactly once;
* concurrent-safe: runs on the same cell serialize their batches on the
  marker row, the marker only ever moves forward, and a run that falls
  behind jumps to the marker another run already pushed further.

Invariant: every instance of the cell with ``id <= last_instance_id`` has a
mapping. The marker stays at the end when a run completes, so the next run
maps only instances created since; ``reset=True`` rescans the whole cell
(e.g. after mappings were deleted by hand).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import exception
from cellrouter.cells.context import RequestContext, get_admin_context, target_cell
from cellrouter.db import bulk
from cellrouter.db.api_schema import instance_mapping_markers, instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.db.database import api_engine
from cellrouter.db.types import utcnow
from cellrouter.index import events
from cellrouter.index.cell_mapping import CellMapping

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MapInstancesResult",
    "get_marker",
    "map_instances",
]

LOG = logging.getLogger(__name__)

#: Instances read from the cell and mapped per API transaction.
DEFAULT_BATCH_SIZE = 5000

_markers = instance_mapping_markers

#: ``progress(examined, mapped)``: running totals of this run, after each batch.
Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class MapInstancesResult:
    """One run: ``mapped`` mappings created by it; ``complete``: the whole cell is mapped.

    ``examined``: instance rows this run read; ``marker``: the instance id
    this run got to (every instance up to it is mapped; None: nothing yet).
    """

    mapped: int
    complete: bool
    examined: int = 0
    marker: int | None = None


def _check_max_count(max_count: int | None) -> None:
    if max_count is None:
        return
    if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
        raise exception.InvalidMaxCount(value=max_count)


def _read_marker(conn: sa.Connection, cell_id: int) -> int | None:
    return conn.execute(
        sa.select(_markers.c.last_instance_id).where(_markers.c.cell_id == cell_id)
    ).scalar_one_or_none()


def get_marker(ctx: RequestContext | None, cell_uuid: str) -> int | None:
    """The cell's resume point (None: no run stored one yet, or it was reset)."""
    cell = CellMapping.get_by_uuid(ctx, cell_uuid)
    with api_engine().connect() as conn:
        return _read_marker(conn, cell.id)


def _reset_marker(cell_id: int) -> None:
    with api_engine().begin() as conn:
        conn.execute(sa.delete(_markers).where(_markers.c.cell_id == cell_id))


def _advance_marker(conn: sa.Connection, cell_id: int, last_id: int) -> int:
    """Move the cell's marker forward to ``last_id`` (never back); return the stored value.

    The UPDATE comes first so it locks the marker row at the start of the
    batch transaction: concurrent runs on one cell then take turns instead
    of deadlocking on each other's mappings (and SQLite takes its write lock
    up front, waiting politely instead of failing on a stale snapshot).
    """
    now = utcnow()
    forward = (
        sa.update(_markers)
        .where(_markers.c.cell_id == cell_id)
        .values(
            last_instance_id=sa.case(
                (_markers.c.last_instance_id < last_id, last_id),
                else_=_markers.c.last_instance_id,
            ),
            updated_at=now,
        )
    )
    if conn.execute(forward).rowcount == 0:
        first = {"cell_id": cell_id, "last_instance_id": last_id, "created_at": now}
        if not bulk.insert_ignore(conn, _markers, [first], _markers.c.cell_id):
            conn.execute(forward)  # another run created the row meanwhile
    stored = _read_marker(conn, cell_id)
    return last_id if stored is None else stored


def _mapping_values(cell: CellMapping, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """The instance_mappings rows for a batch of cell instances (built outside the transaction)."""
    now = utcnow()
    return [
        {
            "instance_uuid": uuid,
            "cell_id": cell.id,
            "project_id": project_id or "",
            "user_id": user_id,
            "queued_for_delete": deleted != 0,
            "created_at": now,
        }
        for _id, uuid, project_id, user_id, deleted in rows
    ]


def _map_batch(
    cell_id: int, last_id: int, values: Sequence[dict[str, Any]]
) -> tuple[list[str], int]:
    """Insert the missing mappings of a batch and move the marker to ``last_id``, atomically.

    Returns (uuids this transaction mapped, the marker as stored now).
    """
    with api_engine().begin() as conn:
        stored = _advance_marker(conn, cell_id, last_id)
        new = bulk.insert_ignore(
            conn, instance_mappings, values, instance_mappings.c.instance_uuid, skip_existing=True
        )
    return new, stored


def _read_cell(cell: CellMapping, engine: sa.Engine, stmt: sa.Select[Any]) -> list[Row[Any]]:
    """Rows of a cell query; a failing cell database raises CellUnavailable."""
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt))
    except sa.exc.DBAPIError as exc:
        raise bulk.cell_unavailable(cell.identity, exc) from None


def _read_batch(cell: CellMapping, engine: sa.Engine, after_id: int, limit: int) -> list[Row[Any]]:
    """The next ``limit`` instances after ``after_id``, soft-deleted ones included."""
    stmt = (
        sa.select(
            instances.c.id,
            instances.c.uuid,
            instances.c.project_id,
            instances.c.user_id,
            instances.c.deleted,
        )
        .where(instances.c.id > after_id)
        .order_by(instances.c.id)
        .limit(limit)
    )
    return _read_cell(cell, engine, stmt)


def _has_more(cell: CellMapping, engine: sa.Engine, after_id: int) -> bool:
    stmt = sa.select(instances.c.id).where(instances.c.id > after_id).limit(1)
    return bool(_read_cell(cell, engine, stmt))


def map_instances(
    ctx: RequestContext | None,
    cell_uuid: str,
    max_count: int | None = None,
    reset: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> MapInstancesResult:
    """Create the missing instance mappings of ``cell_uuid``'s instances.

    Walks the cell's ``instances`` table by id from the stored marker (or
    from the start with ``reset``), ``batch_size`` rows at a time, deleted
    instances included (mapped with ``queued_for_delete``). ``max_count``
    caps the rows this run examines; when it stops early ``complete`` is
    False and the next run continues. Raises
    :class:`~cellrouter.exception.CellMappingNotFound`,
    :class:`~cellrouter.exception.InvalidMaxCount` (``max_count`` < 1) and
    :class:`~cellrouter.exception.CellUnavailable` (cell database failed).
    """
    _check_max_count(max_count)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise exception.InvalidValue(
            what="batch_size", reason=f"a positive integer, not {batch_size!r}"
        )
    ctx = ctx if ctx is not None else get_admin_context()
    cell = CellMapping.get_by_uuid(ctx, cell_uuid)
    if reset:
        _reset_marker(cell.id)
        position = 0
    else:
        with api_engine().connect() as conn:
            position = _read_marker(conn, cell.id) or 0
    with target_cell(ctx, cell) as cctx:
        engine = cctx.engine

    examined = mapped = 0
    while True:
        limit = batch_size if max_count is None else min(batch_size, max_count - examined)
        if limit == 0:
            complete = not _has_more(cell, engine, position)
            break
        rows = _read_batch(cell, engine, position, limit)
        if rows:
            last_id = rows[-1].id
            values = _mapping_values(cell, rows)
            new, stored = bulk.retry_on_deadlock(_map_batch, cell.id, last_id, values)
            if new:
                events.mapping_changed("instance", new)
            examined += len(rows)
            mapped += len(new)
            # A reset run rescans everything; others skip what a peer already did.
            position = last_id if reset else max(last_id, stored)
            if progress is not None:
                progress(examined, mapped)
        if len(rows) < limit:
            complete = True
            break
    LOG.info(
        "map_instances cell %s: examined %d, mapped %d, complete=%s",
        cell.identity,
        examined,
        mapped,
        complete,
    )
    return MapInstancesResult(mapped, complete, examined, position or None)
