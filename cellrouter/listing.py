"""Sorted, paginated lists across cells: the instance list, and any cell-level table.

:class:`CrossCellLister` asks every cell at once (through the scatter
machinery) for its first rows past the marker in the requested order, then
k-way merges the cells' rows on a heap. A cell whose rows run out before the
page is full is asked for its next batch, alone. The order is the one
:mod:`cellrouter.sorting` defines: the same in SQLite, MariaDB, PostgreSQL
and Python, NULLs smallest, the unique key last.

Cells that time out, are marked down or fail are reported in the result
(``partial``); the list is never silently short. Optionally, records for the
instances of those cells are built from the API database's instance mappings
(status ``UNKNOWN``) and merged in sort order like any other cell's rows.

Batch sizes (``[cells]/list_batch_strategy``): ``fixed`` asks every cell for
``list_batch_size`` rows at a time; ``distributed`` splits the page across
the cells (``limit / cells`` plus 10%, at least ``list_batch_size``) and asks
a cell that runs dry for all rows the page still needs, so no cell is ever
asked more than twice per page and never for more than ``limit`` rows.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import cell_list, dberror, exception
from cellrouter.api_schema import instance_mappings
from cellrouter.cell_mapping import CellMapping
from cellrouter.cell_schema import instances
from cellrouter.conf import get_conf
from cellrouter.context import RequestContext
from cellrouter.database import api_engine
from cellrouter.instance import deleted_filter
from cellrouter.instance_mapping import InstanceMapping
from cellrouter.scatter import check_timeout, is_cell_failure, scatter_gather_cells
from cellrouter.sorting import (
    SortSpec,
    after_marker,
    build_sort_spec,
    order_by,
    values_getter,
)

__all__ = ["UNKNOWN_STATUS", "CrossCellLister", "InstanceLister", "ListResult", "list_instances"]

#: ``status`` of the minimal records standing in for the instances of a down cell.
UNKNOWN_STATUS = "UNKNOWN"

_DISTRIBUTED_MARGIN = 1.1
_SEQUENCE_TYPES = (list, tuple, set, frozenset)

Filters = Mapping[str, Any]
SortValues = tuple[Any, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ListResult:
    """One page of a cross-cell list."""

    #: the rows, in sort order, as dicts (column name -> value)
    rows: list[dict[str, Any]]
    #: cells whose rows are missing or incomplete -> why (masked error or "did not respond")
    failed_cells: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: the marker of the next page (None: this was the last one)
    next_marker: str | None = None

    @property
    def partial(self) -> bool:
        """True when some cell did not contribute all its rows."""
        return bool(self.failed_cells)

    @property
    def down_cells(self) -> tuple[str, ...]:
        """The uuids of the cells in :attr:`failed_cells`."""
        return tuple(self.failed_cells)


def _unavailable(cells: Sequence[CellMapping], failed: Mapping[str, str]) -> Exception:
    cell = next(cell for cell in cells if cell.uuid in failed)
    return exception.CellUnavailable(cell=cell.identity, reason=failed[cell.uuid])


def _failure_reason(value: object) -> str:
    if isinstance(value, BaseException):
        return dberror.describe(value)
    return "did not respond"


@dataclasses.dataclass(frozen=True, slots=True)
class _CellQuery:
    """What each cell runs: the selected columns, filters and order; marker and limit vary."""

    spec: SortSpec
    columns: tuple[sa.Column[Any], ...]
    sort_columns: tuple[sa.Column[Any], ...]
    conditions: tuple[sa.ColumnElement[bool], ...]
    names: tuple[str, ...] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(column.name for column in self.columns))

    def as_dict(self, row: Row[Any]) -> dict[str, Any]:
        """A result row as a dict (a third of the cost of ``Row._asdict()``)."""
        return dict(zip(self.names, row, strict=False))  # same query, same width

    def fetch(self, cctx: RequestContext, after: SortValues | None, limit: int | None) -> list[Row]:
        """This cell's rows after ``after`` in sort order, at most ``limit`` of them."""
        with cctx.engine.connect() as conn:
            dialect = conn.dialect
            stmt = sa.select(*self.columns).where(*self.conditions)
            if after is not None:
                stmt = stmt.where(after_marker(self.spec, self.sort_columns, after, dialect))
            stmt = stmt.order_by(*order_by(self.spec, self.sort_columns, dialect))
            if limit is not None:
                stmt = stmt.limit(limit)
            return list(conn.execute(stmt).all())


class _Source:
    """One sorted stream of rows: a cell's batches, or the down cells' records.

    ``fetch(after, n)`` returns the next rows after sort values ``after``
    (None when the source failed); it is called only when the buffer runs dry.
    """

    __slots__ = ("fetch", "getter", "more", "pos", "refill_size", "rows", "to_dict")

    def __init__(
        self,
        rows: Sequence[Any],
        requested: int | None,
        fetch: Callable[[SortValues, int | None], Sequence[Any] | None],
        refill_size: Callable[[int | None], int | None],
        getter: Callable[[Any], SortValues],
        to_dict: Callable[[Any], dict[str, Any]],
    ) -> None:
        self.rows = rows
        self.pos = 0
        self.more = requested is not None and len(rows) >= requested
        self.fetch = fetch
        self.refill_size = refill_size
        self.getter = getter
        self.to_dict = to_dict

    def next(self, want: int | None) -> Any | None:
        """The next row (None: exhausted); ``want`` rows at most are still needed."""
        pos = self.pos
        if pos == len(self.rows):
            if not self.more:
                return None
            size = self.refill_size(want)
            rows = self.fetch(self.getter(self.rows[-1]), size)
            if not rows:
                self.more = False
                return None
            self.rows, pos = rows, 0
            self.more = size is not None and len(rows) >= size
        self.pos = pos + 1
        return self.rows[pos]

    def has_more(self) -> bool:
        return self.pos < len(self.rows) or self.more


def _merge(
    sources: Sequence[_Source], order: tuple[Callable[[SortValues], Any], bool], limit: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """k-way heap merge of ``sources`` up to ``limit`` rows; (rows, more rows exist).

    :func:`heapq.merge` pulls a source's next row only after it emitted the
    previous one, so a cell is asked for another batch only when the page
    really needs its rows.
    """
    key, reverse = order
    out: list[dict[str, Any]] = []
    pulled = 0  # rows taken from the sources; those not in ``out`` wait in the merge

    def keyed(source: _Source) -> Iterator[tuple[Any, Any, Callable[[Any], dict[str, Any]]]]:
        nonlocal pulled
        getter, to_dict = source.getter, source.to_dict
        while (row := source.next(None if limit is None else limit - len(out))) is not None:
            pulled += 1
            yield key(getter(row)), row, to_dict

    merged = heapq.merge(*(keyed(source) for source in sources), key=_first, reverse=reverse)
    for _, row, to_dict in merged:
        out.append(to_dict(row))
        if limit is not None and len(out) >= limit:
            return out, pulled > len(out) or any(source.has_more() for source in sources)
    return out, False


_first = operator.itemgetter(0)


def _read_sort_values(
    cctx: RequestContext, table: sa.Table, keys: Sequence[str], unique_key: str, marker: str
) -> SortValues | None:
    """The sort values of the row whose unique key is ``marker``, deleted or not."""
    stmt = sa.select(*(table.c[key] for key in keys)).where(table.c[unique_key] == marker)
    with cctx.engine.connect() as conn:
        row = conn.execute(stmt).first()
    return tuple(row) if row is not None else None


def _column_condition(column: sa.ColumnElement[Any], value: Any) -> sa.ColumnElement[bool]:
    """``column = value``; a list/tuple/set means any of them, None means IS NULL."""
    if isinstance(value, _SEQUENCE_TYPES):
        return column.in_(list(value))
    if value is None:
        return column.is_(None)
    return column == value


class CrossCellLister:
    """Sorted, paginated listing of one cell-level table across cells.

    Subclasses name the table and may refine how a marker is resolved
    (:meth:`marker_values`) and what stands in for a down cell's rows
    (:meth:`down_cell_records`; none by default).
    """

    table: sa.Table
    unique_key = "uuid"
    default_sort_keys: tuple[str, ...] = ("created_at",)
    default_sort_dir = "desc"

    def __init__(self, table: sa.Table | None = None) -> None:
        if table is not None:
            self.table = table

    # -- hooks ----------------------------------------------------------------

    def filter_conditions(self, ctx: RequestContext, filters: Filters) -> list[Any]:
        """Exact-match conditions for ``filters`` (column -> value or list of values).

        ``deleted`` (True: deleted rows only, False: live rows only) overrides
        ``ctx.read_deleted``, which applies otherwise. Unknown names raise InvalidValue.
        """
        table = self.table
        conditions: list[Any] = []
        if "deleted" in table.c:
            if "deleted" in filters:
                deleted = table.c.deleted
                conditions.append(deleted != 0 if filters["deleted"] else deleted == 0)
            else:
                condition = deleted_filter(ctx, table)
                if condition is not None:
                    conditions.append(condition)
        for name, value in filters.items():
            if name == "deleted":
                continue
            if name not in table.c:
                raise exception.InvalidValue(
                    what="filter", reason=f"{table.name} has no column {name!r}"
                )
            conditions.append(_column_condition(table.c[name], value))
        return conditions

    def marker_values(
        self,
        ctx: RequestContext,
        marker: str,
        spec: SortSpec,
        cells: Sequence[CellMapping],
        timeout: float,
        down_cell_records: bool,
    ) -> SortValues:
        """The sort values of the marker row. Generic: look for it in every cell."""
        results = scatter_gather_cells(
            ctx, cells, timeout, _read_sort_values, self.table, spec.keys, self.unique_key, marker
        )
        failures = []
        for cell in cells:
            value = results[cell.uuid]
            if is_cell_failure(value):
                failures.append((cell, value))
            elif value is not None:
                return value
        if failures:
            cell, value = failures[0]
            raise exception.CellUnavailable(cell=cell.identity, reason=_failure_reason(value))
        raise exception.InvalidMarker(marker=marker)

    def down_cell_records(
        self,
        ctx: RequestContext,
        cells: Sequence[CellMapping],
        spec: SortSpec,
        after: SortValues | None,
        limit: int | None,
        filters: Filters,
    ) -> list[dict[str, Any]]:
        """Stand-in records for the rows of ``cells`` (down), sorted by ``spec``."""
        return []

    # -- listing --------------------------------------------------------------

    def list(
        self,
        ctx: RequestContext,
        *,
        sort_keys: Sequence[str] | None = None,
        sort_dirs: Sequence[str] | None = None,
        limit: int | None = None,
        marker: str | None = None,
        filters: Filters | None = None,
        cells: Iterable[CellMapping] | None = None,
        columns: Sequence[str] | None = None,
        down_cell_records: bool = False,
        timeout: float | None = None,
    ) -> ListResult:
        """One page: at most ``limit`` rows after ``marker`` (a unique-key value).

        ``cells`` defaults to every mapped cell; ``columns`` to all of them
        (sort keys are always included). Raises InvalidSortKey, InvalidMarker,
        and CellUnavailable for a failed cell when
        ``[cells]/list_records_by_skipping_down_cells`` is False and no
        down-cell records were asked for.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise exception.InvalidValue(
                what="limit", reason=f"a whole number >= 0 (or None), not {limit!r}"
            )
        opts = get_conf().cells
        timeout = float(opts.scatter_timeout) if timeout is None else check_timeout(timeout)
        strategy, batch_size = opts.list_batch_strategy, opts.list_batch_size
        skip_failed = opts.list_records_by_skipping_down_cells

        table = self.table
        filters = dict(filters or {})
        spec = build_sort_spec(
            table,
            sort_keys,
            sort_dirs,
            default_keys=self.default_sort_keys,
            default_dir=self.default_sort_dir,
            unique_key=self.unique_key,
        )
        query = self._query(spec, columns, self.filter_conditions(ctx, filters))
        cell_tuple = tuple(cell_list.get_all(ctx) if cells is None else cells)
        if limit == 0 or not cell_tuple:
            return ListResult(rows=[])
        after = (
            self.marker_values(ctx, marker, spec, cell_tuple, timeout, down_cell_records)
            if marker is not None
            else None
        )

        first, refill_size = _batch_policy(strategy, batch_size, limit, len(cell_tuple))
        results = scatter_gather_cells(ctx, cell_tuple, timeout, query.fetch, after, first)
        failed: dict[str, str] = {}
        getter = values_getter(range(len(query.columns) - len(spec.keys), len(query.columns)))
        sources = []
        for cell in cell_tuple:
            value = results[cell.uuid]
            if is_cell_failure(value):
                failed[cell.uuid] = _failure_reason(value)
                continue
            refill = self._refill_function(ctx, cell, query, timeout, failed)
            sources.append(_Source(value, first, refill, refill_size, getter, query.as_dict))
        must_fail = not (skip_failed or down_cell_records)
        if failed and must_fail:
            raise _unavailable(cell_tuple, failed)
        if failed and down_cell_records:
            down = [cell for cell in cell_tuple if cell.uuid in failed]
            sources.append(self._records_source(ctx, down, spec, after, limit, filters))
        rows, more = _merge(sources, spec.merge_order, limit)
        if failed and must_fail:  # a cell failed when the merge asked it for more rows
            raise _unavailable(cell_tuple, failed)
        next_marker = rows[-1][self.unique_key] if more and rows else None
        return ListResult(rows=rows, failed_cells=failed, next_marker=next_marker)

    def _query(
        self, spec: SortSpec, columns: Sequence[str] | None, conditions: list[Any]
    ) -> _CellQuery:
        """The per-cell query; the sort key columns are selected last (for the merge)."""
        table = self.table
        names = list(columns) if columns is not None else [c.name for c in table.c]
        unknown = [name for name in names if name not in table.c]
        if unknown:
            raise exception.InvalidValue(
                what="columns", reason=f"{table.name} has no column(s) {', '.join(unknown)}"
            )
        selected = [table.c[name] for name in names if name not in spec.keys]
        sort_columns = tuple(table.c[key] for key in spec.keys)
        return _CellQuery(spec, (*selected, *sort_columns), sort_columns, tuple(conditions))

    def _refill_function(
        self,
        ctx: RequestContext,
        cell: CellMapping,
        query: _CellQuery,
        timeout: float,
        failed: dict[str, str],
    ) -> Callable[[SortValues, int | None], Sequence[Any] | None]:
        """Next-batch fetcher of one cell: a single-cell scatter (timeout, health).

        A cell failing here is reported in ``failed``; the rows it gave before
        stay in the page, and no down-cell records stand in for the rest.
        """

        def refill(after: SortValues, limit: int | None) -> Sequence[Any] | None:
            value = scatter_gather_cells(ctx, (cell,), timeout, query.fetch, after, limit)
            value = value[cell.uuid]
            if is_cell_failure(value):
                failed[cell.uuid] = _failure_reason(value)
                return None
            return value

        return refill

    def _records_source(
        self,
        ctx: RequestContext,
        cells: Sequence[CellMapping],
        spec: SortSpec,
        after: SortValues | None,
        limit: int | None,
        filters: Filters,
    ) -> _Source:
        """The down cells' stand-in records, as one more sorted source for the merge."""

        def fetch(after: SortValues | None, size: int | None) -> list[dict[str, Any]]:
            return self.down_cell_records(ctx, cells, spec, after, size, filters)

        return _Source(
            fetch(after, limit),
            limit,
            fetch,
            lambda want: want,
            values_getter(spec.keys),
            dict,
        )


def _batch_policy(
    strategy: str, batch_size: int, limit: int | None, cell_count: int
) -> tuple[int | None, Callable[[int | None], int | None]]:
    """(first batch per cell, refill size given the rows still wanted)."""
    if strategy == "fixed":

        def fixed(want: int | None) -> int:
            return batch_size if want is None else min(batch_size, want)

        return fixed(limit), fixed
    if limit is None:
        return None, lambda want: None
    share = math.ceil(limit * _DISTRIBUTED_MARGIN / cell_count)
    return min(limit, max(batch_size, share)), lambda want: want


# -- instances -----------------------------------------------------------------------

#: instance columns the API database knows, from the instance mapping
_MAPPING_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "uuid": instance_mappings.c.instance_uuid,
    "project_id": instance_mappings.c.project_id,
    "user_id": instance_mappings.c.user_id,
    "created_at": instance_mappings.c.created_at,
}


class InstanceLister(CrossCellLister):
    """The instance list: markers resolved through the instance mapping, down-cell records."""

    table = instances

    def marker_values(
        self,
        ctx: RequestContext,
        marker: str,
        spec: SortSpec,
        cells: Sequence[CellMapping],
        timeout: float,
        down_cell_records: bool,
    ) -> SortValues:
        """Read the marker instance in its own cell (found via its mapping).

        If that cell is down and down-cell records were asked for, the marker
        is a down-cell record: its values come from the mapping, as on the
        page that returned it.
        """
        try:
            mapping = InstanceMapping.get_by_instance_uuid(ctx, marker)
        except exception.InstanceMappingNotFound:
            raise exception.InvalidMarker(marker=marker) from None
        cell = mapping.cell_mapping
        if cell is None:
            raise exception.InvalidMarker(marker=marker)
        value = scatter_gather_cells(
            ctx, (cell,), timeout, _read_sort_values, self.table, spec.keys, self.unique_key, marker
        )[cell.uuid]
        if not is_cell_failure(value):
            if value is None:
                raise exception.InvalidMarker(marker=marker)
            return value
        if down_cell_records:
            record = _mapping_record(
                spec, marker, mapping.project_id, mapping.user_id, mapping.created_at
            )
            return tuple(record[key] for key in spec.keys)
        raise exception.CellUnavailable(cell=cell.identity, reason=_failure_reason(value))

    def down_cell_records(
        self,
        ctx: RequestContext,
        cells: Sequence[CellMapping],
        spec: SortSpec,
        after: SortValues | None,
        limit: int | None,
        filters: Filters,
    ) -> list[dict[str, Any]]:
        """Minimal records from the instance mappings of ``cells``, in sort order.

        Only ``project_id`` and ``user_id`` filters can be applied (the API
        database knows nothing else about an instance); deleted-ness follows
        the mapping's ``queued_for_delete``. Sort keys a mapping does not have
        are None.
        """
        im = instance_mappings
        exprs = [_MAPPING_COLUMNS.get(key) for key in spec.keys]
        conditions: list[Any] = [im.c.cell_id.in_([cell.id for cell in cells])]
        for name in ("project_id", "user_id"):
            if name in filters:
                conditions.append(_column_condition(im.c[name], filters[name]))
        if "deleted" in filters:
            conditions.append(im.c.queued_for_delete == bool(filters["deleted"]))
        elif ctx.read_deleted != "yes":
            conditions.append(im.c.queued_for_delete == (ctx.read_deleted == "only"))
        with api_engine().connect() as conn:
            dialect = conn.dialect
            stmt = sa.select(im.c.instance_uuid, im.c.project_id, im.c.user_id, im.c.created_at)
            stmt = stmt.where(*conditions)
            if after is not None:
                stmt = stmt.where(after_marker(spec, exprs, after, dialect))
            stmt = stmt.order_by(*order_by(spec, exprs, dialect))
            if limit is not None:
                stmt = stmt.limit(limit)
            rows = conn.execute(stmt).all()
        return [_mapping_record(spec, *row) for row in rows]


def _mapping_record(
    spec: SortSpec,
    instance_uuid: str,
    project_id: str,
    user_id: str | None,
    created_at: Any,
) -> dict[str, Any]:
    """A down-cell record: what the mapping knows, None for every other sort key."""
    record: dict[str, Any] = dict.fromkeys(spec.keys)
    record.update(
        uuid=instance_uuid,
        project_id=project_id,
        user_id=user_id,
        created_at=created_at,
        status=UNKNOWN_STATUS,
    )
    return record


_INSTANCES = InstanceLister()


def list_instances(
    ctx: RequestContext,
    *,
    sort_keys: Sequence[str] | None = None,
    sort_dirs: Sequence[str] | None = None,
    limit: int | None = None,
    marker: str | None = None,
    filters: Filters | None = None,
    cells: Iterable[CellMapping] | None = None,
    project_only: bool = False,
    by_project: bool | None = None,
    down_cell_records: bool = False,
    columns: Sequence[str] | None = None,
    timeout: float | None = None,
) -> ListResult:
    """A page of instances across cells, sorted ``created_at desc`` by default (like Nova).

    ``filters``: exact values (or lists of values) of instance columns, e.g.
    project_id, user_id, host, vm_state, display_name; ``deleted`` (bool)
    overrides ``ctx.read_deleted``. ``project_only`` restricts the list to
    ``ctx.project_id``. ``by_project`` (default
    ``[cells]/instance_list_per_project_cells``) queries only the cells where
    the filtered project has instances. ``down_cell_records`` merges minimal
    records (status ``UNKNOWN``) for the instances of cells that failed.
    """
    filters = dict(filters or {})
    if project_only:
        if ctx.project_id is None:
            raise exception.InvalidValue(
                what="project_only", reason="the context has no project_id"
            )
        filters["project_id"] = ctx.project_id
    if cells is None:
        if by_project is None:
            by_project = get_conf().cells.instance_list_per_project_cells
        project_id = filters.get("project_id")
        if by_project and isinstance(project_id, str):
            cells = CellMapping.get_by_project(ctx, project_id)
    return _INSTANCES.list(
        ctx,
        sort_keys=sort_keys,
        sort_dirs=sort_dirs,
        limit=limit,
        marker=marker,
        filters=filters,
        cells=cells,
        columns=columns,
        down_cell_records=down_cell_records,
        timeout=timeout,
    )
