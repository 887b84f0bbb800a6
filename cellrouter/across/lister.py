"""The cross-cell lister: one sorted, paginated page of a cell-level table over many cells.

:class:`CrossCellLister` asks every cell at once (through the scatter
machinery) for its first rows past the marker in the requested order, then
k-way merges the cells' rows (:mod:`cellrouter.across.merge`, which also sizes
the batches). A subclass that knows about how many rows each cell holds
(:meth:`CrossCellLister.cell_estimates`) gets each cell asked for its share of
the page plus a margin, and the cells holding none skipped (they cost
nothing): one query per cell per page in the common case. One that knows how
many of the page's rows each cell holds (:meth:`CrossCellLister.page_shares`,
from an index kept in the page's order) gets each cell asked for exactly those
and one more. The cells whose batch proved short are asked for their next
batch together, in one more scatter. Reads go through
:func:`~cellrouter.across.scatter.scatter_gather_reads`: SQLite cells are read
one after another on one worker and, unless the shares are exact, their reads
stay open for the page (:mod:`cellrouter.across.sqlite_reads`), so a short
batch costs a step on rather than a second query. The order is the one
:mod:`cellrouter.across.sorting` defines: the same in SQLite, MariaDB,
PostgreSQL and Python, NULLs smallest, the unique key last.

A page after a marker the lister handed out, sorted on columns that never
change, starts from the values remembered with it
(:mod:`cellrouter.across.issued_markers`) instead of reading the marker's row.

Cells that time out, are marked down or fail are reported in the result
(``partial``); the list is never silently short. A subclass names the table
and may refine the hooks, which see the page as one :class:`PageRequest`: how
a marker is resolved, and what stands in for a failed cell's rows (merged in
sort order like any other cell's rows).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.engine.result import result_tuple

from cellrouter import exception, forksafe
from cellrouter.across import health, sqlite_reads
from cellrouter.across.issued_markers import IssuedMarkers
from cellrouter.across.merge import (
    RefillMany,
    ShareMargin,
    SortedSource,
    SortValues,
    batch_plan,
    merge_sources,
    shares_pay,
)
from cellrouter.across.scatter import check_timeout, reads_in_process, scatter_gather_reads
from cellrouter.across.sorting import (
    SortSpec,
    after_marker,
    build_sort_spec,
    order_by,
    values_getter,
)
from cellrouter.across.sqlite_reads import OpenRead, PageReads
from cellrouter.cells.context import RequestContext
from cellrouter.cells.instance import deleted_filter
from cellrouter.conf import get_conf
from cellrouter.db import dberror
from cellrouter.index import mapping_index
from cellrouter.index.cell_mapping import CellMapping

__all__ = ["CrossCellLister", "Filters", "ListResult", "PageRequest", "column_condition"]

_SEQUENCE_TYPES = (list, tuple, set, frozenset)

#: Exact-match filters: column name -> value, or a list/tuple/set of values.
Filters = Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ListResult:
    """One page of a cross-cell list."""

    #: the rows, in sort order: dicts (column name -> value), or SQLAlchemy ``Row``s
    #: when the page was asked ``as_dicts=False``
    rows: list[Any]
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


@dataclasses.dataclass(frozen=True, slots=True)
class PageRequest:
    """What the lister's hooks are asked about: rows of ``cells`` after ``after``.

    One validated page request; the lister narrows it (``cells``, ``after``,
    ``limit``) with :func:`dataclasses.replace` for each hook call.
    """

    spec: SortSpec
    filters: Filters
    cells: tuple[CellMapping, ...]
    #: at most this many rows (None: all of them)
    limit: int | None
    #: seconds to wait for the cells (validated)
    timeout: float
    #: whether stand-in records for failed cells' rows were asked for
    down_cell_records: bool
    #: the sort values of the marker row (None: from the first row)
    after: SortValues | None = None


def column_condition(column: sa.ColumnElement[Any], value: Any) -> sa.ColumnElement[bool]:
    """``column = value``; a list/tuple/set means any of them, None means IS NULL."""
    if isinstance(value, _SEQUENCE_TYPES):
        return column.in_(list(value))
    if value is None:
        return column.is_(None)
    return column == value


def _check_limit(limit: object) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise exception.InvalidValue(
            what="limit", reason=f"a whole number >= 0 (or None), not {limit!r}"
        )


def _failure_reason(value: object) -> str:
    """Why a cell's scatter result is missing: the masked exception, or it did not answer."""
    if isinstance(value, BaseException):
        return dberror.describe(value)
    return "did not respond"


def _unavailable(cells: Sequence[CellMapping], failed: Mapping[str, str]) -> Exception:
    cell = next(cell for cell in cells if cell.uuid in failed)
    return exception.CellUnavailable(cell=cell.identity, reason=failed[cell.uuid])


@dataclasses.dataclass(frozen=True, slots=True)
class _CellQuery:
    """What each cell runs: the selected columns, filters and order; marker and limit vary."""

    spec: SortSpec
    columns: tuple[sa.Column[Any], ...]
    sort_columns: tuple[sa.Column[Any], ...]
    conditions: tuple[sa.ColumnElement[bool], ...]
    names: tuple[str, ...] = dataclasses.field(init=False)
    #: a result row -> its sort values (the sort key columns are selected last)
    sort_values: Callable[[Any], SortValues] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    #: (dialect name, marker values, limited) -> statement: built once per page, not per cell
    statements: dict[tuple[str, SortValues | None, bool], sa.Select[Any]] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(column.name for column in self.columns))
        count, keys = len(self.columns), len(self.sort_columns)
        object.__setattr__(self, "sort_values", values_getter(range(count - keys, count)))
        object.__setattr__(self, "statements", {})

    def as_dicts(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Result rows as dicts (a third of the cost of ``Row._asdict()``); records stay."""
        names = self.names
        return [
            row if isinstance(row, dict) else dict(zip(names, row, strict=False)) for row in rows
        ]

    def as_rows(self, rows: list[Any]) -> list[Any]:
        """Down-cell records (dicts) as Rows of the selected columns (None where unknown)."""
        make = result_tuple(self.names)
        names = self.names
        return [
            make([row.get(name) for name in names]) if isinstance(row, dict) else row
            for row in rows
        ]

    def statement(
        self, dialect: sa.Dialect, after: SortValues | None, limited: bool
    ) -> sa.Select[Any]:
        """The SELECT for rows after ``after``, its marker values bound as ``after0``,
        ``after1``... and its LIMIT (if ``limited``) as ``limit``. Built once per
        dialect and NULL pattern of the marker: every cell and refill of a page
        shares it (and SQLAlchemy's cache key for it)."""
        nulls = None if after is None else tuple(value is None for value in after)
        key = (dialect.name, nulls, limited)
        stmt = self.statements.get(key)
        if stmt is None:
            stmt = sa.select(*self.columns).where(*self.conditions)
            if nulls is not None:
                columns = enumerate(zip(self.sort_columns, nulls, strict=True))
                bound = [
                    None if null else sa.bindparam(f"after{index}", type_=column.type)
                    for index, (column, null) in columns
                ]
                stmt = stmt.where(after_marker(self.spec, self.sort_columns, bound, dialect))
            stmt = stmt.order_by(*order_by(self.spec, self.sort_columns, dialect))
            if limited:
                stmt = stmt.limit(sa.bindparam("limit", type_=sa.Integer()))
            self.statements[key] = stmt
        return stmt

    def fetch(
        self,
        cctx: RequestContext,
        after: SortValues | None,
        limit: int | None,
        reads: PageReads | None = None,
    ) -> list[Row[Any]]:
        """This cell's rows after ``after`` in sort order, at most ``limit`` of them.

        With ``reads``, a SQLite cell's rows come from its read kept open for the
        page: the first batch opens it, the next ones step on from where it
        stands (which is ``after``, the last row it gave).
        """
        if reads is not None:
            assert cctx.cell_uuid is not None
            read = reads.get(cctx.cell_uuid)
            if read is not None:
                return read.take(limit)
        params: dict[str, Any] = (
            {}
            if after is None
            else {f"after{index}": value for index, value in enumerate(after) if value is not None}
        )
        conn = cctx.engine.connect()
        sqlite = conn.dialect.name == "sqlite"
        if sqlite and reads is not None and limit is not None:
            return self._open(conn, cctx, after, params, limit, reads)
        with conn:
            if limit is not None:
                params["limit"] = limit
            stmt = self.statement(conn.dialect, after, limit is not None)
            if not sqlite:
                return list(conn.execute(stmt, params).all())
            with sqlite_reads.TURNS:
                return list(conn.execute(stmt, params).all())

    def _open(
        self,
        conn: Connection,
        cctx: RequestContext,
        after: SortValues | None,
        params: dict[str, Any],
        size: int,
        reads: PageReads,
    ) -> list[Row[Any]]:
        """The first ``size`` rows of a read kept open in ``reads`` (unless it ran out).

        Owns ``conn``: it stays open with the read, or is closed here.
        """
        assert cctx.cell_uuid is not None
        try:
            if reads.limit is not None:
                params["limit"] = reads.limit
            stmt = self.statement(conn.dialect, after, reads.limit is not None)
            with sqlite_reads.TURNS:
                result = conn.execute(stmt, params)
                rows = list(result.fetchmany(size))
        except BaseException:
            conn.close()
            raise
        if len(rows) < size:
            result.close()
            conn.close()
            return rows
        reads.add(cctx.cell_uuid, OpenRead(conn, result))
        return rows

    def fetch_sized(
        self,
        cctx: RequestContext,
        after: SortValues | None,
        sizes: Mapping[str, int | None],
        reads: PageReads | None,
    ) -> list[Row[Any]]:
        """:meth:`fetch` with this cell's own batch size from ``sizes`` (by cell uuid)."""
        assert cctx.cell_uuid is not None
        return self.fetch(cctx, after, sizes[cctx.cell_uuid], reads)

    def fetch_next(
        self,
        cctx: RequestContext,
        batches: Mapping[str, tuple[SortValues, int, Callable[[Any], bool] | None]],
        reads: PageReads | None,
    ) -> tuple[list[Row[Any]], bool]:
        """This cell's next batch from ``batches`` (by cell uuid): (rows, whether the
        cell may hold more). Given ``past``, its read kept open steps on until a row
        is past the page's end so far; otherwise :meth:`fetch` asks for ``size`` rows
        after ``after``.
        """
        assert cctx.cell_uuid is not None
        after, size, past = batches[cctx.cell_uuid]
        read = reads.get(cctx.cell_uuid) if reads is not None and past is not None else None
        if read is not None and past is not None:
            return read.take_until(past, STEP_CHUNK)
        rows = self.fetch(cctx, after, size, reads)
        return rows, len(rows) >= size


#: rows a read kept open is stepped by when filled up to the page's end
STEP_CHUNK = 4


def _read_sort_values(
    cctx: RequestContext, table: sa.Table, keys: tuple[str, ...], unique_key: str, marker: str
) -> SortValues | None:
    """The sort values of the row whose unique key is ``marker``, deleted or not."""
    with cctx.engine.connect() as conn:
        row = conn.execute(_marker_statement(table, keys, unique_key), {"marker": marker}).first()
    return tuple(row) if row is not None else None


@functools.lru_cache(maxsize=64)
def _marker_statement(table: sa.Table, keys: tuple[str, ...], unique_key: str) -> sa.Select[Any]:
    """SELECT the sort values of the row whose unique key is bound as ``marker``."""
    return sa.select(*(table.c[key] for key in keys)).where(
        table.c[unique_key] == sa.bindparam("marker")
    )


def _owner(row: Any, sources: Sequence[SortedSource]) -> SortedSource | None:
    """The source whose buffer holds ``row`` (by identity: a Row's ``==`` compares values)."""
    for source in sources:
        if any(map(operator.is_, source.rows, itertools.repeat(row))):
            return source
    return None


#: the per-cell queries a lister keeps for reuse (least recently used dropped)
QUERY_CACHE_SIZE = 256


def _frozen(filters: Filters) -> Hashable:
    """``filters`` as a hashable value (lists as tuples, sets as frozensets)."""
    return tuple(sorted((name, _hashable(value)) for name, value in filters.items()))


def _hashable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return frozenset(value)
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


#: guards every lister's query cache (a dict lookup or insertion at a time)
_queries_lock = forksafe.Lock()
_Kept = TypeVar("_Kept")


class CrossCellLister:
    """Sorted, paginated listing of one cell-level table across cells.

    Subclasses name the table and may refine the hooks: how a marker is
    resolved (:meth:`marker_values`) and what stands in for a failed cell's
    rows (:meth:`down_cell_records`; nothing by default).

    The per-cell query of a page (its statements) is kept and reused by the
    pages asking for the same sort, columns and :meth:`query_key`: a reused
    statement is neither built again nor adapted by SQLAlchemy on each cell.
    """

    table: sa.Table
    unique_key = "uuid"
    default_sort_keys: tuple[str, ...] = ("created_at",)
    default_sort_dir = "desc"
    #: Columns whose values never change once a row exists: a marker this lister
    #: handed out for a page sorted on these only is resolved from memory
    #: (:mod:`cellrouter.across.issued_markers`), not read again in its cell.
    fixed_keys: frozenset[str] = frozenset()

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
            conditions.append(column_condition(table.c[name], value))
        return conditions

    def query_key(self, ctx: RequestContext, filters: Filters) -> Hashable | None:
        """All that :meth:`filter_conditions` depends on, so that pages with the same
        key share their statements (None: build them for this page alone).

        A subclass whose conditions depend on more than ``ctx.read_deleted`` and
        ``filters`` refines both hooks together.
        """
        try:
            key = (ctx.read_deleted, _frozen(filters))
            hash(key)
        except TypeError:  # an unhashable filter value
            return None
        return key

    def marker_values(self, ctx: RequestContext, marker: str, request: PageRequest) -> SortValues:
        """The sort values of the marker row, looked for in every cell of ``request``.

        InvalidMarker when no cell has it; CellUnavailable (the first failed
        cell) when the cells that answered do not have it but some cell failed.
        A marker this lister handed out, in one of ``request.cells``, for a page
        sorted on :attr:`fixed_keys` only, needs no read.
        """
        cells, keys = request.cells, request.spec.keys
        issued = self._issued_markers().get(marker, keys)
        if issued is not None and any(cell.uuid == issued[0] for cell in cells):
            return issued[1]
        results = scatter_gather_reads(
            ctx,
            cells,
            request.timeout,
            _read_sort_values,
            self.table,
            keys,
            self.unique_key,
            marker,
        )
        failed: dict[str, str] = {}
        for cell in cells:
            value = results[cell.uuid]
            if isinstance(value, tuple):
                return value
            if value is not None:  # None: not in this cell; anything else is a failure
                failed[cell.uuid] = _failure_reason(value)
        if failed:
            raise _unavailable(cells, failed)
        raise exception.InvalidMarker(marker=marker)

    def down_cell_records(self, ctx: RequestContext, request: PageRequest) -> list[dict[str, Any]]:
        """Stand-in records for the rows of ``request.cells`` (failed), in sort order."""
        return []

    def cell_estimates(self, ctx: RequestContext, request: PageRequest) -> Mapping[str, int] | None:
        """About how many rows each cell of ``request`` holds (uuid -> count), for
        the cells that may hold any: a cell left out holds none and is not asked.

        None (the default): unknown, every cell is asked and the page split evenly.
        """
        return None

    def page_shares(
        self, ctx: RequestContext, request: PageRequest, estimates: Mapping[str, int]
    ) -> Mapping[str, int] | None:
        """How many of the page's rows each cell of ``estimates`` (what
        :meth:`cell_estimates` said) holds (uuid -> rows), as an index kept in about
        the page's order tells: each cell is then asked for that many rows and one
        more. Asked only when :func:`~cellrouter.across.merge.shares_pay`.

        None (the default): unknown, the page is apportioned by ``estimates``.
        """
        return None

    # -- listing --------------------------------------------------------------

    def page(
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
        as_dicts: bool = True,
    ) -> ListResult:
        """One page: at most ``limit`` rows after ``marker`` (a unique-key value).

        ``cells`` defaults to every mapped cell; ``columns`` to all of them
        (sort keys are always included). ``as_dicts=False`` returns the rows as
        SQLAlchemy ``Row``s (no per-row conversion; down-cell records become
        Rows too, None where unknown). Raises InvalidValue, InvalidSortKey,
        InvalidMarker, and CellUnavailable for a failed cell when
        ``[cells]/list_records_by_skipping_down_cells`` is False and no
        down-cell records were asked for.
        """
        _check_limit(limit)
        opts = get_conf().cells
        timeout = float(opts.scatter_timeout) if timeout is None else check_timeout(timeout)
        filters = dict(filters or {})
        spec = build_sort_spec(
            self.table,
            sort_keys,
            sort_dirs,
            default_keys=self.default_sort_keys,
            default_dir=self.default_sort_dir,
            unique_key=self.unique_key,
        )
        query = self._query(ctx, spec, columns, filters)
        cell_tuple = tuple(mapping_index().cells() if cells is None else cells)
        if limit == 0 or not cell_tuple:
            return ListResult(rows=[])
        request = PageRequest(spec, filters, cell_tuple, limit, timeout, down_cell_records)
        if marker is not None:
            after = self.marker_values(ctx, marker, request)
            request = dataclasses.replace(request, after=after)

        asked, weights, exact = self._cells_to_ask(ctx, request)
        local = sum(1 for cell in asked if reads_in_process(cell))
        # Reads kept open pay off when cells may well run short, not on exact shares.
        keep_open = not exact and limit is not None and local > 0 and sqlite_reads.reserve(local)
        reads = PageReads(limit) if keep_open else None
        try:
            return self._collect(ctx, request, query, asked, weights, exact, reads, as_dicts)
        finally:
            if reads is not None:
                reads.close()
                sqlite_reads.release(local)

    def _collect(
        self,
        ctx: RequestContext,
        request: PageRequest,
        query: _CellQuery,
        asked: tuple[CellMapping, ...],
        weights: list[int] | None,
        exact: bool,
        reads: PageReads | None,
        as_dicts: bool,
    ) -> ListResult:
        """The page from the cells ``asked``, weighted by ``weights`` (their shares of
        the page if ``exact``), SQLite cells' reads kept open in ``reads`` (if any)."""
        opts = get_conf().cells
        spec, limit, cell_tuple = request.spec, request.limit, request.cells
        down_cell_records = request.down_cell_records
        margin = self._share_margin()
        first, refill_size = batch_plan(
            opts.list_batch_strategy,
            opts.list_batch_size,
            limit,
            weights,
            len(asked),
            reads_open=reads is not None,
            exact=exact,
            extra=margin.rows,
        )
        sizes = {cell.uuid: size for cell, size in zip(asked, first, strict=True)}
        results = scatter_gather_reads(
            ctx, asked, request.timeout, query.fetch_sized, request.after, sizes, reads
        )
        failed: dict[str, str] = {}
        getter = query.sort_values
        sources = []
        cell_of: dict[int, CellMapping] = {}
        for cell in asked:
            value = results[cell.uuid]
            if not isinstance(value, list):  # the did-not-respond sentinel or an exception
                failed[cell.uuid] = _failure_reason(value)
                continue
            refill = self._refill_function(ctx, request, cell, query, failed, reads)
            source = SortedSource(value, sizes[cell.uuid], refill, refill_size, getter)
            sources.append(source)
            cell_of[id(source)] = cell
        must_fail = not (opts.list_records_by_skipping_down_cells or down_cell_records)
        if failed and must_fail:
            raise _unavailable(cell_tuple, failed)
        if failed and down_cell_records:
            down = tuple(cell for cell in cell_tuple if cell.uuid in failed)
            sources.append(self._records_source(ctx, dataclasses.replace(request, cells=down)))
        positions = range(len(query.columns) - len(spec.keys), len(query.columns))
        refill_many = self._refill_many_function(ctx, request, cell_of, query, failed, reads)
        short: list[int] = []  # the cells refilled in each round

        def counted_refill(
            wanted: Sequence[tuple[SortedSource, int]], through: SortValues | None
        ) -> None:
            short.append(len(wanted))
            refill_many(wanted, through)

        rows, more = merge_sources(
            sources, spec.merge_order, limit, (positions, spec.descending), counted_refill
        )
        if exact:
            margin.record(len(sources), short[0] if short else 0)
        if failed and must_fail:  # a cell failed when the merge asked it for more rows
            raise _unavailable(cell_tuple, failed)
        next_marker = None
        if more and rows:
            last = rows[-1]
            if isinstance(last, dict):
                next_marker = last[self.unique_key]
            else:
                values = getter(last)
                next_marker = values[spec.keys.index(self.unique_key)]
                owner = _owner(last, sources) if self.fixed_keys.issuperset(spec.keys) else None
                if owner is not None and id(owner) in cell_of:
                    self._issued_markers().remember(
                        next_marker, spec.keys, cell_of[id(owner)].uuid, values
                    )
        rows = query.as_dicts(rows) if as_dicts else query.as_rows(rows) if failed else rows
        return ListResult(rows=rows, failed_cells=failed, next_marker=next_marker)

    def _cells_to_ask(
        self, ctx: RequestContext, request: PageRequest
    ) -> tuple[tuple[CellMapping, ...], list[int] | None, bool]:
        """The cells worth a query, their weights (None: unknown), and whether the
        weights are the cells' shares of the page (:meth:`page_shares`, when they
        pay) rather than their sizes (:meth:`cell_estimates`).

        A cell known to hold no matching rows is left out, unless it is marked
        down (it is then reported as failed, as any other down cell).
        """
        estimates = self.cell_estimates(ctx, request)
        if estimates is None:
            return request.cells, None, False
        down = health.down_cells()
        asked = tuple(cell for cell in request.cells if cell.uuid in estimates or cell.uuid in down)
        weights = [estimates.get(cell.uuid, 1) for cell in asked]
        # Shares size distributed batches only, and only where the margin would cost more.
        limit, local = request.limit, all(reads_in_process(cell) for cell in asked)
        if (
            limit is not None
            and get_conf().cells.list_batch_strategy != "fixed"
            and shares_pay(limit, weights, local)
        ):
            shares = self.page_shares(ctx, request, estimates)
            if shares is not None:  # a down cell left out: no rows expected
                return asked, [shares.get(cell.uuid, 0) for cell in asked], True
        return asked, weights, False

    def _query(
        self, ctx: RequestContext, spec: SortSpec, columns: Sequence[str] | None, filters: Filters
    ) -> _CellQuery:
        """The per-cell query (kept for the next page like it); the sort key columns
        are selected last (for the merge)."""
        table = self.table
        names = tuple(columns) if columns is not None else tuple(c.name for c in table.c)
        filter_key = self.query_key(ctx, filters)
        key = None if filter_key is None else (spec, names, filter_key)
        cache = self._query_cache()
        if key is not None:
            with _queries_lock:
                query = cache.get(key)
                if query is not None:
                    cache.move_to_end(key)
                    return query
        unknown = [name for name in names if name not in table.c]
        if unknown:
            raise exception.InvalidValue(
                what="columns", reason=f"{table.name} has no column(s) {', '.join(unknown)}"
            )
        conditions = tuple(self.filter_conditions(ctx, filters))
        selected = [table.c[name] for name in names if name not in spec.keys]
        sort_columns = tuple(table.c[key] for key in spec.keys)
        query = _CellQuery(spec, (*selected, *sort_columns), sort_columns, conditions)
        if key is not None:
            with _queries_lock:
                cache[key] = query
                while len(cache) > QUERY_CACHE_SIZE:
                    cache.popitem(last=False)
        return query

    def reset(self) -> None:
        """Forget what this lister kept and learnt: its statements, its margin over
        page shares and the markers it handed out (when rows were replaced behind
        its back, as tests do)."""
        self.__dict__.pop("_queries", None)
        self.__dict__.pop("_margin", None)
        self.__dict__.pop("_markers", None)

    def _share_margin(self) -> ShareMargin:
        """This lister's margin over exact page shares."""
        return self._kept("_margin", ShareMargin)

    def _issued_markers(self) -> IssuedMarkers:
        """The markers this lister handed out, with their rows' cells and sort values."""
        return self._kept("_markers", IssuedMarkers)

    def _query_cache(self) -> OrderedDict[Hashable, _CellQuery]:
        """This lister's kept queries."""
        return self._kept("_queries", OrderedDict)

    def _kept(self, name: str, make: Callable[[], _Kept]) -> _Kept:
        """This lister's ``name``, made on first use (a subclass's ``__init__`` need
        not call this one's); ``dict.setdefault`` keeps the first of two racing."""
        kept: _Kept | None = self.__dict__.get(name)
        if kept is None:
            kept = self.__dict__.setdefault(name, make())
        return kept

    def _refill_function(
        self,
        ctx: RequestContext,
        request: PageRequest,
        cell: CellMapping,
        query: _CellQuery,
        failed: dict[str, str],
        reads: PageReads | None,
    ) -> Callable[[SortValues, int | None], Sequence[Any] | None]:
        """Next-batch fetcher of one cell: a single-cell scatter (timeout, health).

        A cell failing here is reported in ``failed``; the rows it gave before
        stay in the page, and no down-cell records stand in for the rest.
        """
        cells, timeout = (cell,), request.timeout

        def refill(after: SortValues, limit: int | None) -> Sequence[Any] | None:
            results = scatter_gather_reads(ctx, cells, timeout, query.fetch, after, limit, reads)
            value = results[cell.uuid]
            if isinstance(value, list):
                return value
            failed[cell.uuid] = _failure_reason(value)
            return None

        return refill

    def _refill_many_function(
        self,
        ctx: RequestContext,
        request: PageRequest,
        cell_of: Mapping[int, CellMapping],
        query: _CellQuery,
        failed: dict[str, str],
        reads: PageReads | None,
    ) -> RefillMany:
        """Next-batch fetcher of several cells' sources at once: one scatter.

        A cell failing here is reported in ``failed`` as in :meth:`_refill_function`.
        """

        key, reverse = request.spec.merge_order
        getter = query.sort_values

        def refill_many(
            wanted: Sequence[tuple[SortedSource, int]], through: SortValues | None
        ) -> None:
            end = None if through is None else key(through)

            def past(row: Any) -> bool:  # sorts after the page's end so far
                value = key(getter(row))
                return bool(value < end) if reverse else bool(value > end)

            cells = [cell_of[id(source)] for source, _ in wanted]
            stepped = set()
            if reads is not None and through is not None:
                stepped = {cell.uuid for cell in cells if reads.get(cell.uuid) is not None}
            batches = {
                cell.uuid: (source.after(), size, past if cell.uuid in stepped else None)
                for cell, (source, size) in zip(cells, wanted, strict=True)
            }
            results = scatter_gather_reads(
                ctx, cells, request.timeout, query.fetch_next, batches, reads
            )
            for cell, (source, size) in zip(cells, wanted, strict=True):
                value = results[cell.uuid]
                if not isinstance(value, tuple):
                    failed[cell.uuid] = _failure_reason(value)
                    source.extend(None, size)
                elif cell.uuid in stepped and through is not None:
                    source.extend_through(value[0], value[1], through)
                else:
                    source.extend(value[0], size)

        return refill_many

    def _records_source(self, ctx: RequestContext, request: PageRequest) -> SortedSource:
        """The down cells' stand-in records, as one more sorted source for the merge."""

        def fetch(after: SortValues, size: int | None) -> list[dict[str, Any]]:
            return self.down_cell_records(
                ctx, dataclasses.replace(request, after=after, limit=size)
            )

        return SortedSource(
            self.down_cell_records(ctx, request),
            request.limit,
            fetch,
            lambda want, density: want,
            values_getter(request.spec.keys),
        )
