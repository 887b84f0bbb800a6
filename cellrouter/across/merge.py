"""The k-way merge of a cross-cell list: sorted row streams that refill lazily, and batch sizes.

Each :class:`SortedSource` is one cell's rows (or the stand-in records of the
down cells) in sort order, held one batch at a time; :func:`merge_sources`
pools and sorts the batches (C-level sorts), refilling the sources that
proved short all at once, or merges them on a heap, asking a source for its
next batch only when the page really needs its rows. Rows pass through
untouched (SQLAlchemy ``Row``s stay ``Row``s): turning them into anything
else is the caller's choice.

Batch sizes (:func:`batch_plan`, ``[cells]/list_batch_strategy``):
``fixed`` asks every cell for ``list_batch_size`` rows at a time;
``distributed`` splits the page across the cells. When the lister knows
about how many rows each cell holds (its *weight*), a cell is asked for its
expected share of the page plus a statistical margin (standard deviations of
the hypergeometric draw), so one batch per cell fills the page unless the
cells' rows are skewed in sort order. The margin is the one that costs least
on average (:func:`first_margin`): a wider one parses rows the page may not
need, a narrower one leaves more cells short, and a short cell costs one more
round of the merge. When the lister knows each cell's share of the page
itself (from an index kept in about the page's order), a cell is asked for
exactly that and one row more, plus the rows :class:`ShareMargin` learnt the
index's order is off by. Without weights the page is split evenly plus 10%,
at least ``list_batch_size``. A short source is asked for its likely share of the
rows the page may still need from it (its share of the rows merged so far,
plus :data:`MARGIN_SIGMAS`), so a cell that leads the sort order is asked for
all of them; no cell is asked for more than ``limit`` rows. A cell whose read
stays open for the page instead steps on exactly up to the page's end so far.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "MARGIN_SIGMAS",
    "RefillMany",
    "SortValues",
    "ShareMargin",
    "SortedSource",
    "batch_plan",
    "first_margin",
    "merge_sources",
    "shares_pay",
]

#: the even split's buffer when the cells' sizes are unknown (Nova's 10%)
_DISTRIBUTED_MARGIN = 1.1
#: standard deviations of margin over a short source's likely share of the rest
MARGIN_SIGMAS = 2.0
#: What a short cell costs, in rows parsed (measured on SQLite cells with
#: bench/bench_scale.py, ~3.5 us a row): one more round of the merge (a
#: scatter, the pool sorted again) ...
ROUND_COST_ROWS = 150.0
#: ... plus, for each short cell, its next batch: a query (~45 us) and the rows
#: it asks for beyond what the page turns out to need (its margin, ~6), or a
#: step on its read kept open for the page (~5 us), exactly as far as the page
#: needs, give or take a chunk
QUERY_COST_ROWS = 25.0
STEP_COST_ROWS = 4.0
#: What a page's exact shares cost, in rows: one more query, on the API
#: database (~0.4 ms). Measured with bench/bench_scale.py: for a page of 1000
#: they pay from about 5 cells on; below, the margin costs less.
SHARES_COST_ROWS = 120.0
#: the first-batch margins :func:`first_margin` chooses from
_MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)

#: The values of a row's sort keys, in :attr:`~cellrouter.across.sorting.SortSpec.keys` order.
SortValues = tuple[Any, ...]
#: ``refill_size(want, density)``: how many rows to ask a dry source for, ``want`` still
#: needed; ``density``, when known, is the source's share of the rows merged so far.
RefillSize = Callable[[int | None, float | None], int | None]


class SortedSource:
    """One sorted stream of rows: a cell's batches, or the down cells' records.

    ``fetch(after, n)`` returns the next rows after sort values ``after``
    (None when the source failed); it is called only when the buffer runs dry.
    """

    __slots__ = ("fetch", "getter", "more", "pos", "refill_size", "rows", "through")

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
        #: sort values up to which every row of the source is buffered (None: unknown)
        self.through: SortValues | None = None

    def next(self, want: int | None) -> Any | None:
        """The next row (None: exhausted); ``want`` rows at most are still needed."""
        pos = self.pos
        if pos == len(self.rows):
            if not self.more:
                return None
            size = self.refill_size(want, None)
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

    def after(self) -> SortValues:
        """The sort values of the last row buffered (where a next batch starts)."""
        return self.getter(self.rows[-1])

    def extend(self, rows: Sequence[Any] | None, requested: int) -> None:
        """Append the next batch, asked for ``requested`` rows (None: the source failed)."""
        if rows:
            self.rows = [*self.rows, *rows]
        self.more = rows is not None and len(rows) >= requested

    def extend_through(self, rows: Sequence[Any], more: bool, through: SortValues) -> None:
        """Append every row up to sort values ``through`` (and perhaps a few past them)."""
        if rows:
            self.rows = [*self.rows, *rows]
        self.more = more
        self.through = through


#: ``refill_many([(source, n), ...], through)``: give each source its next rows, all
#: sources at once (one round trip to the cells): at most ``n``
#: (:meth:`SortedSource.extend`), or every row up to sort values ``through``, the
#: page's last row so far, if the pool holds a page (:meth:`SortedSource.extend_through`).
RefillMany = Callable[[Sequence[tuple[SortedSource, int]], SortValues | None], None]


def merge_sources(
    sources: Sequence[SortedSource],
    order: tuple[Callable[[SortValues], Any], bool],
    limit: int | None,
    columns: tuple[Sequence[int], Sequence[bool]] | None = None,
    refill_many: RefillMany | None = None,
) -> tuple[list[Any], bool]:
    """k-way merge of ``sources`` up to ``limit`` rows; (rows, more rows exist).

    ``order`` is (key, reverse) of the sort values, as
    :attr:`~cellrouter.across.sorting.SortSpec.merge_order` gives it. One
    source needs no merge at all. When ``columns`` gives where the sort values
    sit in every row and their directions, the page comes from
    :func:`_sorted_batches` (C-level sorts) if the first batches hold it, or
    hold it once the sources that ran short got their next batch, all at once,
    from ``refill_many``. Otherwise :func:`heapq.merge` pulls a source's next
    row only after it emitted the previous one, so a cell is asked for another
    batch (alone) only when the page really needs its rows.
    """
    if not sources:
        return [], False
    if len(sources) == 1:
        return _drain(sources[0], limit)
    if columns is not None:
        page = _sorted_batches(sources, columns, limit, refill_many)
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
    refill_many: RefillMany | None,
) -> tuple[list[Any], bool] | None:
    """The page from the sources' batches, or None when it needs the heap merge.

    The batches are pooled and sorted by one stable C-level sort per key, the
    last key first, each in its own direction: no Python call per row. Rows up
    to the earliest last-buffered row of a source that may hold more are
    certainly in order; when that prefix covers the page, it is the page.
    Otherwise every source whose last buffered row sits at position ``p < limit
    - 1`` may owe the page up to ``limit - 1 - p`` more rows: ``refill_many``
    asks them all at once, for their refill size or for every row up to the
    row now at ``limit - 1`` (a read kept open steps exactly that far), and
    the pool is sorted again. A source filled that far is never short again
    for this page: the row at ``limit - 1`` only moves earlier as rows come
    in. A NULL among the sort values (which Python cannot compare) gives None.
    """
    positions, descending = columns
    getter = sources[0].getter
    if any(source.pos or source.getter is not getter for source in sources):
        return None
    while True:
        pool = list(itertools.chain.from_iterable(source.rows for source in sources))
        if not _sort_pool(pool, positions, descending):
            return None
        open_ended = [source for source in sources if source.more and source.rows]
        if limit is None:  # the whole of every source, or the heap merge
            return None if open_ended else (pool, False)
        short = _short_sources(pool, open_ended, limit)
        if not short:
            return pool[:limit], len(pool) > limit or any(source.more for source in sources)
        if refill_many is None:
            return None
        refill_many(short, getter(pool[limit - 1]) if len(pool) >= limit else None)


def _sort_pool(pool: list[Any], positions: Sequence[int], descending: Sequence[bool]) -> bool:
    """Sort ``pool`` in place by its sort values (False: a NULL, which Python cannot
    compare, is among them; the pool is then left as it was).

    One C-level sort on the first key does it when no two rows share that key (the
    common case: ``created_at``); otherwise one stable sort per key, the last first.
    """
    first = operator.itemgetter(positions[0])
    keys = list(map(first, pool))
    if None in keys:
        return False
    try:
        unique = len(positions) == 1 or len(set(keys)) == len(keys)
    except TypeError:  # unhashable values: sort key by key
        unique = False
    if unique:
        pool.sort(key=first, reverse=descending[0])
        return True
    for position in positions[1:]:
        if None in map(operator.itemgetter(position), pool):
            return False
    for position, desc in zip(reversed(positions), reversed(descending), strict=True):
        pool.sort(key=operator.itemgetter(position), reverse=desc)
    return True


def _short_sources(
    pool: list[Any], open_ended: list[SortedSource], limit: int
) -> list[tuple[SortedSource, int]]:
    """(source, rows it may still owe the page) for each source in ``open_ended`` whose
    last buffered row comes before position ``limit - 1`` of ``pool``."""
    # By identity (a Row's ``==`` compares every column). A source whose last row
    # is in the pool's tail (the margins' rows past the page) is not short, nor is
    # one whole up to a page end at or past this one's: the common case costs a set
    # of the tail, not a position for every row.
    tail = set(map(id, pool[limit - 1 :]))
    open_ended = [
        source
        for source in open_ended
        if source.through is None and id(source.rows[-1]) not in tail
    ]
    if not open_ended:
        return []
    where = dict(zip(map(id, pool[: limit - 1]), itertools.count(), strict=False))
    short = []
    for source in open_ended:
        position = where[id(source.rows[-1])]
        want = limit - 1 - position
        size = source.refill_size(want, len(source.rows) / (position + 1))
        short.append((source, max(1, size or want)))
    short.sort(key=lambda item: where[id(item[0].rows[-1])])  # in pool order
    return short


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
    reads_open: bool = False,
    exact: bool = False,
    extra: int = 0,
) -> tuple[list[int | None], RefillSize]:
    """(first batch of each cell, refill size given the rows still wanted) for a page.

    ``weights``: about how many rows each of the ``cell_count`` cells holds
    (None: unknown, the page is split evenly), or with ``exact``, how many of
    the page's rows it holds: each is then asked for those, ``extra`` more (see
    :class:`ShareMargin`) and the one after, which shows it holds no more;
    ``reads_open``: a short cell's next batch steps on its open read instead of
    running a query.
    """
    if strategy == "fixed":

        def fixed(want: int | None, density: float | None = None) -> int:
            return batch_size if want is None else min(batch_size, want)

        return [fixed(limit)] * cell_count, fixed
    if limit is None:
        return [None] * cell_count, _everything
    if exact and weights is not None:
        return [min(limit, max(weight, 0) + 1 + extra) for weight in weights], _as_wanted
    total = sum(weights) if weights is not None else 0
    if weights is None or total <= 0:
        share = math.ceil(limit * _DISTRIBUTED_MARGIN / max(cell_count, 1))
        return [min(limit, max(batch_size, share))] * cell_count, _as_wanted
    draws = [_draw(limit, weight, total) for weight in weights]
    sigmas = first_margin(
        [math.sqrt(variance) for _, variance in draws],
        STEP_COST_ROWS if reads_open else QUERY_COST_ROWS,
    )
    return [_share(limit, mean, variance, sigmas) for mean, variance in draws], _as_wanted


#: a page whose exact shares left more than this fraction of its cells short
#: raises :class:`ShareMargin` by a row ...
SHORT_FRACTION = 0.05
#: ... and this many pages in a row with no cell short lower it by one
CALM_PAGES = 20
#: the most rows :class:`ShareMargin` adds to an exact share
MAX_EXTRA_ROWS = 4


class ShareMargin:
    """Rows to ask each cell for beyond its exact share of a page, learnt from pages.

    Exact shares come from an index whose order may disagree a little with the
    cells' (a mapping created some time before its instance): a cell then runs
    short by a row or two and costs a round. While pages see more than
    :data:`SHORT_FRACTION` of their cells short, each raises the margin by a
    row (up to :data:`MAX_EXTRA_ROWS`); :data:`CALM_PAGES` pages in a row with
    none short lower it by one. Updated without a lock: a lost update between
    two threads only delays the next step.
    """

    __slots__ = ("calm", "rows")

    def __init__(self) -> None:
        self.rows = 0
        self.calm = 0

    def reset(self) -> None:
        """Back to no margin."""
        self.rows = self.calm = 0

    def record(self, cells: int, short: int) -> None:
        """A page asked ``cells`` cells for their exact shares; ``short`` ran short."""
        if short > SHORT_FRACTION * cells:
            self.rows, self.calm = min(self.rows + 1, MAX_EXTRA_ROWS), 0
        elif short:
            self.calm = 0
        elif self.rows:
            self.calm += 1
            if self.calm >= CALM_PAGES:
                self.rows, self.calm = self.rows - 1, 0


def _draw(limit: int, weight: int, total: int) -> tuple[float, float]:
    """(mean, variance) of how many of the first ``limit`` rows are a cell's own, the
    cell holding ``weight`` of ``total`` rows interleaved at random (hypergeometric)."""
    if weight <= 0:
        return 0.0, 0.0
    p = min(1.0, weight / total)
    fpc = (total - limit) / (total - 1) if total > limit else 0.0
    return limit * p, limit * p * (1.0 - p) * fpc


def _share(limit: int, mean: float, variance: float, sigmas: float) -> int:
    """A first batch: ``mean`` plus the margin, at least 1 and at most ``limit``."""
    return 1 if mean <= 0 else max(1, min(limit, _with_margin(mean, variance, sigmas)))


def first_margin(sigmas: Sequence[float], short_cost: float) -> float:
    """The first-batch margin, in standard deviations, that costs least on average.

    ``sigmas``: each cell's standard deviation (rows); ``short_cost``: a short
    cell's next batch, in rows. Expected cost of margin ``z``: the margin's
    rows, ``z * sum(sigmas)``, plus :data:`ROUND_COST_ROWS` times the chance
    that some cell is short, plus ``short_cost`` for each cell likely short.
    Few cells afford a wide margin; many small cells a narrow one.
    """
    return _least_cost(sigmas, short_cost)[0]


def shares_pay(limit: int, weights: Sequence[int], reads_open: bool) -> bool:
    """Whether asking for each cell's exact share of a page (one more query) costs
    less, on average, than the margin :func:`batch_plan` would give cells of these
    ``weights`` (:data:`SHARES_COST_ROWS` against :func:`first_margin`'s cost)."""
    total = sum(weights)
    if total <= 0:
        return False
    draws = [_draw(limit, weight, total) for weight in weights]
    short_cost = STEP_COST_ROWS if reads_open else QUERY_COST_ROWS
    return _least_cost([math.sqrt(var) for _, var in draws], short_cost)[1] > SHARES_COST_ROWS


def _least_cost(sigmas: Sequence[float], short_cost: float) -> tuple[float, float]:
    """(the margin of :func:`first_margin`, its expected cost in rows)."""
    spread = sum(sigmas)
    count = sum(1 for sigma in sigmas if sigma > 0)
    if count == 0:
        return 0.0, 0.0

    def cost(z: float) -> float:
        covered = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))  # P(a cell is not short)
        return (
            z * spread
            + ROUND_COST_ROWS * (1.0 - covered**count)
            + short_cost * count * (1.0 - covered)
        )

    best = min(_MARGINS, key=cost)
    return best, cost(best)


def _everything(want: int | None, density: float | None) -> None:
    return None


def _as_wanted(want: int | None, density: float | None) -> int | None:
    """All the rows still wanted; given the source's ``density`` in the rows merged so
    far, its expected share of them plus the margin (a skewed source gets them all)."""
    if want is None or density is None:
        return want
    return min(want, _with_margin(want * density, want * density * (1.0 - density)))


def _with_margin(mean: float, variance: float, sigmas: float = MARGIN_SIGMAS) -> int:
    """``mean`` plus ``sigmas`` standard deviations, plus one, rounded up."""
    return math.ceil(mean + sigmas * math.sqrt(max(variance, 0.0))) + 1
