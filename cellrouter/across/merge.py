"""The k-way merge of a cross-cell list: sorted row streams that refill lazily, and batch sizes.

Each :class:`SortedSource` is one cell's rows (or the stand-in records of the
down cells) in sort order, held one batch at a time; :func:`merge_sources`
merges them on a heap and asks a source for its next batch only when the page
really needs its rows.

Batch sizes (:func:`batch_policy`, ``[cells]/list_batch_strategy``):
``fixed`` asks every cell for ``list_batch_size`` rows at a time;
``distributed`` splits the page across the cells (``limit / cells`` plus 10%,
at least ``list_batch_size``) and asks a cell that runs dry for all rows the
page still needs, so no cell is ever asked more than twice per page and never
for more than ``limit`` rows.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["SortValues", "SortedSource", "batch_policy", "merge_sources"]

_DISTRIBUTED_MARGIN = 1.1

#: The values of a row's sort keys, in :attr:`~cellrouter.across.sorting.SortSpec.keys` order.
SortValues = tuple[Any, ...]


class SortedSource:
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
        """True while rows are buffered or the source may have more."""
        return self.pos < len(self.rows) or self.more


def merge_sources(
    sources: Sequence[SortedSource],
    order: tuple[Callable[[SortValues], Any], bool],
    limit: int | None,
) -> tuple[list[dict[str, Any]], bool]:
    """k-way heap merge of ``sources`` up to ``limit`` rows; (rows, more rows exist).

    ``order`` is (key, reverse) of the sort values, as
    :attr:`~cellrouter.across.sorting.SortSpec.merge_order` gives it.
    :func:`heapq.merge` pulls a source's next row only after it emitted the
    previous one, so a cell is asked for another batch only when the page
    really needs its rows.
    """
    key, reverse = order
    out: list[dict[str, Any]] = []
    pulled = 0  # rows taken from the sources; those not in ``out`` wait in the merge

    def keyed(source: SortedSource) -> Iterator[tuple[Any, Any, Callable[[Any], dict[str, Any]]]]:
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


def batch_policy(
    strategy: str, batch_size: int, limit: int | None, cell_count: int
) -> tuple[int | None, Callable[[int | None], int | None]]:
    """(first batch per cell, refill size given the rows still wanted) for a page of ``limit``."""
    if strategy == "fixed":

        def fixed(want: int | None) -> int:
            return batch_size if want is None else min(batch_size, want)

        return fixed(limit), fixed
    if limit is None:
        return None, lambda want: None
    share = math.ceil(limit * _DISTRIBUTED_MARGIN / cell_count)
    return min(limit, max(batch_size, share)), lambda want: want
