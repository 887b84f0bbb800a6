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

This module reads the cell; the API side of each batch (mappings and marker
in one transaction) is :meth:`cellrouter.index.store.MappingStore.map_instance_batch`.
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
from cellrouter.db.cell_schema import instances
from cellrouter.index import mapping_store
from cellrouter.index.api import NewInstanceMapping
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.store import advance_marker

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MapInstancesResult",
    "get_marker",
    "map_instances",
]

LOG = logging.getLogger(__name__)

#: Instances read from the cell and mapped per API transaction.
DEFAULT_BATCH_SIZE = 5000

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


def get_marker(ctx: RequestContext | None, cell_uuid: str) -> int | None:
    """The cell's resume point (None: no run stored one yet, or it was reset)."""
    store = mapping_store()
    return store.marker(store.cell(cell_uuid).id)


#: The marker step of each batch (the store's), under the name it has always had here.
_advance_marker = advance_marker


def _new_mappings(rows: Sequence[Sequence[Any]]) -> list[NewInstanceMapping]:
    """The mappings of a batch of :func:`_read_batch` rows (soft-deleted ones queued for
    delete). Rows are unpacked, not read by name: five times faster on a big batch."""
    return [
        NewInstanceMapping(uuid, project_id or "", user_id, deleted != 0)
        for _id, uuid, project_id, user_id, deleted in rows
    ]


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
    store = mapping_store()
    cell = store.cell(cell_uuid)
    if reset:
        store.reset_marker(cell.id)
        position = 0
    else:
        position = store.marker(cell.id) or 0
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
            new, stored = store.map_instance_batch(cell, last_id, _new_mappings(rows))
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
