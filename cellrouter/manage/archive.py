"""``db archive_deleted_rows`` and ``db purge`` across cells, with nova-manage's semantics.

Archiving moves soft-deleted rows of a cell into its shadow tables in bounded
batches (:mod:`cellrouter.db.archive`), then deletes what the API database
keeps of the instances among them: their instance mappings, build requests
and request specs (through the mapping store, the index's one writer).

Crash safety: **the cell first, then the API database**, as every unmapping
(:mod:`cellrouter.db.two_phase`). A batch commits in the cell together with
the uuids of its instances in the cell's ``archive_unmaps``; then the API rows
of those uuids are deleted; then the uuids are struck off ``archive_unmaps``.
Each run (and each concurrent run) first finishes what ``archive_unmaps``
still lists. A crash (SIGKILL included) at any point thus leaves:

* before the cell's commit: nothing changed anywhere;
* after it: rows archived, their uuids listed, mappings maybe still there:
  the next run deletes them (deleting again is a no-op), then the list;
* the opposite order could delete mappings of instances the crash left in
  the cell and, worse, without a list nobody could find mappings of
  instances already archived: an archived instance is in no batch again.

Two runs at once lock their batches by primary key (SQLite: one writer at a
time), so a row is archived once; the API deletes are idempotent.

Counts are keyed ``<cell>.<table>`` with ``--all-cells`` (``<table>`` for
``[database]/connection``), plus ``API_DB.<table>``, as nova-manage prints them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.db import archive as archive_db
from cellrouter.db.cell_schema import ARCHIVED_TABLES
from cellrouter.exception import CellUnavailable, Invalid, InvalidMaxCount, InvalidValue
from cellrouter.index import mapping_store
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.manage import cell_db

__all__ = [
    "DEFAULT_MAX_ROWS",
    "MAX_ROWS_LIMIT",
    "ArchiveResult",
    "PurgeResult",
    "archive_deleted_rows",
    "parse_before",
    "parse_max_rows",
    "purge",
]

DEFAULT_MAX_ROWS = 1000
#: nova-manage's upper bound of ``--max_rows`` (a signed 32-bit integer)
MAX_ROWS_LIMIT = 2**31 - 1
#: the key prefix of the API database's counts
API_DB = "API_DB"

#: ``date``'s default output and its usual variants (after ISO 8601, tried first)
_DATE_FORMATS = (
    "%a %b %d %H:%M:%S %Z %Y",
    "%a %b %d %H:%M:%S %Y",
    "%a %d %b %Y %H:%M:%S %Z",
    "%a %d %b %Y %I:%M:%S %p %Z",
)


def parse_max_rows(text: str | int | None) -> int:
    """``--max_rows`` as typed: default 1000, else 1 .. 2**31-1 (InvalidMaxCount)."""
    if text is None:
        return DEFAULT_MAX_ROWS
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InvalidMaxCount(value=text) from None
    if not 1 <= value <= MAX_ROWS_LIMIT:
        raise InvalidMaxCount(value=text)
    return value


def parse_before(text: str | None) -> datetime.datetime | None:
    """``--before`` as typed: ``YYYY-MM-DD [HH:MM[:SS]]`` (ISO 8601) or ``date``'s
    output, as naive UTC (the tables' time); InvalidValue otherwise."""
    if text is None:
        return None
    value = " ".join(text.split())
    parsed: datetime.datetime | None = None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise InvalidValue(
            what="date", reason=f"{text!r} is neither YYYY-MM-DD [HH:MM:SS] nor date's output"
        )
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
    return parsed


@dataclasses.dataclass(slots=True)
class PurgeResult:
    """Shadow rows deleted: ``(where, table, timestamp column, rows)`` per table with rows."""

    tables: list[tuple[str, str, str, int]] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(rows for *_, rows in self.tables)


@dataclasses.dataclass(slots=True)
class ArchiveResult:
    """Rows archived per ``[<cell>.]<table>`` and ``API_DB.<table>``; cells that
    failed (identity -> reason); the purge that followed, if any."""

    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    purged: PurgeResult | None = None

    @property
    def archived(self) -> bool:
        """Whether a cell row was archived (nova-manage's exit 1: run again)."""
        return any(n for key, n in self.rows.items() if not key.startswith(f"{API_DB}."))

    @property
    def total(self) -> int:
        """Cell rows archived (API-database rows not counted, as nova-manage's max_rows)."""
        return sum(n for key, n in self.rows.items() if not key.startswith(f"{API_DB}."))

    def add(self, prefix: str | None, counts: dict[str, int]) -> None:
        for table, n in counts.items():
            key = f"{prefix}.{table}" if prefix else table
            self.rows[key] = self.rows.get(key, 0) + n


#: (label for counts or None, identity for errors, cell or None for [database])
_Target = tuple[str | None, str, CellMapping | None]


def _targets(all_cells: bool) -> list[_Target]:
    """Every mapped cell (by name), or ``[database]/connection``. Reads the cell list
    either way, as nova-manage does: the API database must be reachable."""
    cells = sorted(mapping_store().cells(), key=lambda c: (c.name or "", c.uuid))
    if not all_cells:
        return [(None, "[database]/connection", None)]
    return [(cell.name or cell.uuid, cell.identity, cell) for cell in cells]


def _engine(ctx: RequestContext, cell: CellMapping | None) -> sa.Engine:
    if cell is None:
        return ctx.engine
    with target_cell(ctx, cell) as cctx:
        return cctx.engine


def _reaching(cell: CellMapping | None) -> contextlib.AbstractContextManager[None]:
    """A mapped cell's failures as CellUnavailable (``[database]`` raises its own)."""
    return cell_db.reaching(cell) if cell is not None else contextlib.nullcontext()


def _unmap(engine: sa.Engine, uuids: Sequence[str], result: ArchiveResult) -> None:
    """The API side of archived instances, then strike them off the cell's list."""
    if not uuids:
        return
    result.add(API_DB, mapping_store().delete_archived_instances(uuids))
    archive_db.forget_unmaps(engine, uuids)


def _finish_pending(engine: sa.Engine, result: ArchiveResult) -> None:
    """What a crashed (or concurrent) run left: API rows of instances already archived."""
    after = ""
    while uuids := archive_db.pending_unmaps(engine, after=after):
        _unmap(engine, uuids, result)
        after = uuids[-1]


def _archive_cell(
    engine: sa.Engine,
    label: str | None,
    budget: int,
    until_complete: bool,
    before: datetime.datetime | None,
    result: ArchiveResult,
    progress: Callable[[int], None] | None,
) -> int:
    """Archive one cell's tables, parents first; returns the cell rows moved."""
    _finish_pending(engine, result)
    moved_here = 0
    for table in ARCHIVED_TABLES:
        while until_complete or budget - moved_here > 0:
            limit = budget if until_complete else budget - moved_here
            moved = archive_db.archive_batch(engine, table, limit, before)
            if not moved.total:
                break
            result.add(label, moved.rows)
            _unmap(engine, moved.instance_uuids, result)
            moved_here += moved.total
            if progress is not None:
                progress(result.total)
    return moved_here


def archive_deleted_rows(
    ctx: RequestContext,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    until_complete: bool = False,
    before: datetime.datetime | None = None,
    all_cells: bool = False,
    purge_after: bool = False,
    progress: Callable[[int], None] | None = None,
    failed: Callable[[CellUnavailable], None] | None = None,
) -> ArchiveResult:
    """Archive soft-deleted rows of ``[database]/connection`` or of every cell.

    ``max_rows`` bounds the rows archived in all (a soft limit: a batch takes
    whole families); with ``until_complete`` it is the batch size and every
    cell is emptied. A cell that fails is reported to ``failed`` and skipped.
    ``purge_after``: when rows were archived, purge every shadow row of the same
    cells. Ctrl-C stops after the running batch (``interrupted``).
    """
    result = ArchiveResult()
    total = 0
    for label, identity, cell in _targets(all_cells):
        if not until_complete and total >= max_rows:
            break
        try:
            with _reaching(cell):
                engine = _engine(ctx, cell)
                budget = max_rows if until_complete else max_rows - total
                total += _archive_cell(
                    engine, label, budget, until_complete, before, result, progress
                )
        except CellUnavailable as exc:
            result.failed[identity] = str(exc)
            if failed is not None:
                failed(exc)
        except KeyboardInterrupt:
            result.interrupted = True
            break
    if purge_after and result.archived and not result.interrupted:
        result.purged = purge(ctx, before=None, purge_all=True, all_cells=all_cells)
    return result


def purge(
    ctx: RequestContext,
    *,
    before: datetime.datetime | None = None,
    purge_all: bool = False,
    all_cells: bool = False,
    failed: Callable[[CellUnavailable], None] | None = None,
) -> PurgeResult:
    """Delete shadow rows archived before ``before``, or all of them (``purge_all``),
    from ``[database]/connection`` or every cell. Invalid without either."""
    if before is None and not purge_all:
        raise Invalid(reason="purging needs a date to purge before, or to purge everything")
    result = PurgeResult()
    targets = _targets(True) if all_cells else [(None, "DB", None)]
    for _, identity, cell in targets:
        where = f"Cell {identity}" if cell is not None else "DB"

        def status(table: str, column: str, rows: int, where: str = where) -> None:
            result.tables.append((where, table, column, rows))

        try:
            with _reaching(cell):
                archive_db.purge(_engine(ctx, cell), before, status)
        except CellUnavailable as exc:
            result.failed[identity] = str(exc)
            if failed is not None:
                failed(exc)
    return result
