"""The k-way merge of a cross-cell list: sorted row streams that refill lazily, and batch sizes.

Each :class:`SortedSource` is one cell's rows (or the stand-in records of the
down cells) in sort order, held one batch at a time; :func:`merge_sources`
merges them on a heap and asks a source for its next batch only when the page
really needs its rows. Rows pass through untouched (SQLAlchemy ``Row``s stay
``Row``s): turning them into anything else is the caller's choice.

Batch sizes (:func:`batch_plan`, ``[cells]/list_batch_strategy``):
``fixed`` asks every cell for ``list_batch_size`` rows at a time;
``distributed`` splits the page across the cells. When the lister knows
about how many rows each cell holds (its *weight*), a cell is asked for its
expected share of the page plus a statistical margin (:data:`MARGIN_SIGMAS`
standard deviations of the hypergeometric draw), so one query per cell fills
the page unless the cells' rows are skewed in sort order; without weights the
page is split evenly plus 10%, at least ``list_batch_size``. A cell that runs
dry is asked for all rows the page still needs, so no cell is asked more than
twice per page, nor for more than ``limit`` rows.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["MARGIN_SIGMAS", "SortValues", "SortedSource", "batch_plan", "merge_sources"]

#: the even split's buffer when the cells' sizes are unknown (Nova's 10%)
_DISTRIBUTED_MARGIN = 1.1
#: standard deviations of margin over a cell's expected share of a page: 2 leaves about
#: one cell in 40 short of its share (one more query), and asks for fewer rows than 3
#: (measured faster at 3 and 64 cells, bench/bench_scale.py)
MARGIN_SIGMAS = 2.0

#: The values of a row's sort keys, in :attr:`~cellrouter.across.sorting.SortSpec.keys` order.
SortValues = tuple[Any, ...]
#: ``refill_size(want)``: how many rows to ask a dry source for, ``want`` still needed.
RefillSize = Callable[[int | None], int | None]


class SortedSource:
    """One sorted stream of rows: a cell's batches, or the down cells' records.

    ``fetch(after, n)`` returns the next rows after sort values ``after``
    (None when the source failed); it is called only when the buffer runs dry.
    """

    __slots__ = ("fetch", "getter", "more", "pos", "refill_size", "rows")

    def __init__(
        self,
        rows: Sequence[Any],
        requested: int | None,
        fetch: Callable[[SortValues, int | None], Sequence[Any] | None],
        refill_size: RefillSize,
        getter: Callable[[Any], SortValues],
    ) -> None:
        self.rows = rows
        self.pos = 0
        self.more = requested is not None and len(rows) >= requested
        self.fetch = fetch
        self.refill_size = refill_size
        self.getter = getter

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
        """True while rows are buffered or the source may have more."""
        return self.pos < len(self.rows) or self.more


def merge_sources(
    sources: Sequence[SortedSource],
    order: tuple[Callable[[SortValues], Any], bool],
    limit: int | None,
    columns: tuple[Sequence[int], Sequence[bool]] | None = None,
) -> tuple[list[Any], bool]:
    """k-way merge of ``sources`` up to ``limit`` rows; (rows, more rows exist).

    ``order`` is (key, reverse) of the sort values, as
    :attr:`~cellrouter.across.sorting.SortSpec.merge_order` gives it. One
    source needs no merge at all. When the first batches already hold the
    page, and ``columns`` gives where the sort values sit in every row and
    their directions, the page comes from :func:`_sorted_batches` (C-level
    sorts); otherwise :func:`heapq.merge` pulls a source's next row only after
    it emitted the previous one, so a cell is asked for another batch only
    when the page really needs its rows.
    """
    if not sources:
        return [], False
    if len(sources) == 1:
        return _drain(sources[0], limit)
    if columns is not None:
        page = _sorted_batches(sources, columns, limit)
        if page is not None:
            return page
    key, reverse = order
    out: list[Any] = []
    append = out.append
    pulled = 0  # rows taken from the sources; those not in ``out`` wait in the merge

    def keyed(source: SortedSource) -> Iterator[tuple[Any, Any]]:
        nonlocal pulled
        getter, take = source.getter, source.next
        while (row := take(None if limit is None else limit - len(out))) is not None:
            pulled += 1
            yield key(getter(row)), row

    merged = heapq.merge(*(keyed(source) for source in sources), key=_first, reverse=reverse)
    if limit is None:
        out.extend(map(_second, merged))
        return out, False
    for _, row in merged:
        append(row)
        if len(out) >= limit:
            return out, pulled > len(out) or any(source.has_more() for source in sources)
    return out, False


def _sorted_batches(
    sources: Sequence[SortedSource],
    columns: tuple[Sequence[int], Sequence[bool]],
    limit: int | None,
) -> tuple[list[Any], bool] | None:
    """The page from the sources' first batches alone, or None when it needs more.

    The batches are pooled and sorted by one stable C-level sort per key, the
    last key first, each in its own direction: no Python call per row. Rows up
    to the earliest last-buffered row of a source that may hold more are
    certainly in order; when that prefix covers the page, it is the page.
    A NULL among the sort values (which Python cannot compare) gives None.
    """
    positions, descending = columns
    getter = sources[0].getter
    if any(source.pos or source.getter is not getter for source in sources):
        return None
    pool = [row for source in sources for row in source.rows]
    for position in positions:
        if None in map(operator.itemgetter(position), pool):
            return None
    for position, desc in zip(reversed(positions), reversed(descending), strict=True):
        pool.sort(key=operator.itemgetter(position), reverse=desc)
    open_ended = [source.rows[-1] for source in sources if source.more and source.rows]
    if not open_ended:  # every source is in the pool whole
        return (pool, False) if limit is None else (pool[:limit], len(pool) > limit)
    if limit is None or _first_of(pool, open_ended) + 1 < limit:
        return None
    return pool[:limit], True


def _first_of(pool: list[Any], rows: list[Any]) -> int:
    """The position in ``pool`` of the first of ``rows`` (by identity: a Row's ``==``
    is a Python-level comparison of every column)."""
    wanted = {id(row) for row in rows}
    for position, row in enumerate(pool):
        if id(row) in wanted:
            return position
    return len(pool)


def _drain(source: SortedSource, limit: int | None) -> tuple[list[Any], bool]:
    """One source's rows up to ``limit``: no keys, no heap."""
    out: list[Any] = []
    while limit is None or len(out) < limit:
        first = source.next(None if limit is None else limit - len(out))
        if first is None:
            return out, False
        rows, pos = source.rows, source.pos  # take the rest of the buffer at once
        stop = len(rows) if limit is None else min(len(rows), pos + limit - len(out) - 1)
        out.append(first)
        out.extend(rows[pos:stop])
        source.pos = stop
    return out, source.has_more()


_first = operator.itemgetter(0)
_second = operator.itemgetter(1)


def batch_plan(
    strategy: str,
    batch_size: int,
    limit: int | None,
    weights: Sequence[int] | None,
    cell_count: int,
) -> tuple[list[int | None], RefillSize]:
    """(first batch of each cell, refill size given the rows still wanted) for a page.

    ``weights``: about how many rows each of the ``cell_count`` cells holds
    (None: unknown, the page is split evenly).
    """
    if strategy == "fixed":

        def fixed(want: int | None) -> int:
            return batch_size if want is None else min(batch_size, want)

        return [fixed(limit)] * cell_count, fixed
    if limit is None:
        return [None] * cell_count, _everything
    total = sum(weights) if weights is not None else 0
    if weights is None or total <= 0:
        share = math.ceil(limit * _DISTRIBUTED_MARGIN / max(cell_count, 1))
        return [min(limit, max(batch_size, share))] * cell_count, _as_wanted
    return [expected_share(limit, weight, total) for weight in weights], _as_wanted


def expected_share(limit: int, weight: int, total: int) -> int:
    """Rows to ask a cell holding ``weight`` of ``total`` rows for, for a page of ``limit``.

    If the rows of the cells are interleaved at random in sort order, the
    cell's count among the first ``limit`` is hypergeometric: its mean plus
    :data:`MARGIN_SIGMAS` standard deviations (plus one) covers it but rarely
    (a shortfall costs the cell one more query, not a wrong page).
    """
    if weight <= 0:
        return 1
    p = min(1.0, weight / total)
    mean = limit * p
    fpc = (total - limit) / (total - 1) if total > limit else 0.0
    sigma = math.sqrt(limit * p * (1.0 - p) * fpc)
    return max(1, min(limit, math.ceil(mean + MARGIN_SIGMAS * sigma) + 1))


def _everything(want: int | None) -> None:
    return None


def _as_wanted(want: int | None) -> int | None:
    return want
