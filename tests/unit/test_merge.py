"""The k-way merge: sorted first batches, short sources refilled together, batch sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cellrouter.across.merge import (
    CALM_PAGES,
    MAX_EXTRA_ROWS,
    QUERY_COST_ROWS,
    STEP_COST_ROWS,
    ShareMargin,
    SortedSource,
    SortValues,
    _draw,
    batch_plan,
    first_margin,
    merge_sources,
    shares_pay,
)
from cellrouter.across.sorting import merge_order, values_getter

GETTER = values_getter([0])
ORDER = merge_order((True,))  # one key, descending
COLUMNS = ((0,), (True,))


class Cell:
    """A source's backing rows: ``(value,)`` tuples in descending order."""

    def __init__(self, name: str, values: Sequence[int]) -> None:
        self.name = name
        self.rows = [(value,) for value in sorted(values, reverse=True)]
        self.asked: list[int | None] = []

    def after(self, after: SortValues, size: int | None) -> list[tuple[int]]:
        self.asked.append(size)
        rest = [row for row in self.rows if row[0] < after[0]]
        return rest if size is None else rest[:size]

    def source(self, size: int) -> SortedSource:
        _, refill_size = batch_plan("distributed", 1, 100, [1], 1)
        self.asked.append(size)
        return SortedSource(self.rows[:size], size, self.after, refill_size, GETTER)


def _refill_recorder(cells: dict[int, Cell], calls: list[list[tuple[str, int]]]) -> Any:
    def refill_many(wanted: Sequence[tuple[SortedSource, int]], through: Any) -> None:
        calls.append([(cells[id(source)].name, size) for source, size in wanted])
        for source, size in wanted:
            source.extend(cells[id(source)].after(source.after(), size), size)

    return refill_many


def test_short_sources_are_refilled_together_once_with_their_likely_share() -> None:
    a, b, c = Cell("a", range(200, 100, -2)), Cell("b", range(199, 100, -2)), Cell("c", range(10))
    sources = [a.source(5), b.source(5), c.source(10)]
    calls: list[list[tuple[str, int]]] = []
    by_id = {id(source): cell for source, cell in zip(sources, (a, b, c), strict=True)}
    rows, more = merge_sources(sources, ORDER, 12, COLUMNS, _refill_recorder(by_id, calls))
    assert [value for (value,) in rows] == list(range(200, 188, -1))
    assert more
    # One round for both short sources: a's last row (192) sits at position 8 of 12,
    # b's (191) at 9; each is asked for its likely share of what follows, at most
    # the rows left to fill. c (its last row far below the page) is not asked again.
    assert calls == [[("a", 3), ("b", 2)]]
    assert c.asked == [10]


def test_a_skewed_source_is_asked_for_all_the_page_still_needs() -> None:
    a, b = Cell("a", range(1000, 900, -1)), Cell("b", range(100))
    sources = [a.source(10), b.source(10)]
    calls: list[list[tuple[str, int]]] = []
    by_id = {id(source): cell for source, cell in zip(sources, (a, b), strict=True)}
    rows, more = merge_sources(sources, ORDER, 30, COLUMNS, _refill_recorder(by_id, calls))
    assert [value for (value,) in rows] == list(range(1000, 970, -1))
    assert more
    # a: all its rows so far lead the page, so all 20 rows left; b: its last row (90)
    # sits at position 19 of 30, half the rows so far are its own.
    assert calls == [[("a", 20), ("b", 10)]]


def test_without_refill_many_a_short_source_goes_through_the_heap_merge() -> None:
    a, b = Cell("a", range(200, 100, -2)), Cell("b", range(199, 100, -2))
    rows, more = merge_sources([a.source(3), b.source(3)], ORDER, 10, COLUMNS)
    assert [value for (value,) in rows] == list(range(200, 190, -1))
    assert more
    assert len(a.asked) == 2 and len(b.asked) == 2  # each refilled alone, when dry


def test_sources_that_hold_the_page_need_no_refill() -> None:
    a, b = Cell("a", range(200, 100, -2)), Cell("b", range(199, 100, -2))
    calls: list[list[tuple[str, int]]] = []
    sources = [a.source(8), b.source(8)]
    by_id = {id(source): cell for source, cell in zip(sources, (a, b), strict=True)}
    rows, _ = merge_sources(sources, ORDER, 10, COLUMNS, _refill_recorder(by_id, calls))
    assert [value for (value,) in rows] == list(range(200, 190, -1))
    assert calls == []


def test_a_source_that_fails_its_refill_ends_there() -> None:
    a, b = Cell("a", range(200, 100, -2)), Cell("b", range(199, 100, -2))
    sources = [a.source(2), b.source(20)]
    failed: list[str] = []

    def refill_many(wanted: Sequence[tuple[SortedSource, int]], through: Any) -> None:
        for source, size in wanted:
            failed.append("a" if source is sources[0] else "b")
            source.extend(None, size)

    rows, _ = merge_sources(sources, ORDER, 10, COLUMNS, refill_many)
    assert failed == ["a"]
    assert [value for (value,) in rows] == [200, 199, 198, *range(197, 180, -2)][:10]


def test_a_first_batch_covers_the_mean_plus_the_margin() -> None:
    empty_and_whole, _ = batch_plan("distributed", 1, 1000, [0, 6000], 2)
    assert empty_and_whole == [1, 1000]
    share = batch_plan("distributed", 1, 1000, [94] * 64, 64)[0][0]  # one of 64 cells
    assert 1000 * 94 / (94 * 64) < share < 1000 * 94 / (94 * 64) + 10


def test_exact_shares_ask_each_cell_for_its_rows_and_the_one_after() -> None:
    first, refill = batch_plan("distributed", 100, 1000, [600, 400, 0], 3, exact=True)
    assert first == [601, 401, 1]  # no margin: the one after shows a cell holds no more
    assert batch_plan("distributed", 100, 10, [30, 0], 2, exact=True)[0] == [10, 1]
    assert refill(50, 0.5) is not None  # a short cell still gets its likely share
    # ``fixed`` keeps Nova's meaning whatever is known.
    assert batch_plan("fixed", 100, 1000, [600, 400], 2, exact=True)[0] == [100, 100]


def test_page_shares_pay_across_many_cells_not_few() -> None:
    def pay(cells: int, reads_open: bool = True) -> bool:
        return shares_pay(1000, [6000 // cells] * cells, reads_open)

    # A few big cells need a margin of a few dozen rows and rarely a second round:
    # cheaper than one more query. Many small ones are short by the dozen.
    assert not pay(3) and not pay(4) and not pay(3, reads_open=False)
    assert pay(16) and pay(64) and pay(64, reads_open=False)
    assert not shares_pay(1000, [0, 0], True)


def test_the_share_margin_grows_while_cells_run_short_and_shrinks_when_calm() -> None:
    margin = ShareMargin()
    margin.record(64, 3)  # under 5% of the cells short: no change
    assert margin.rows == 0
    margin.record(64, 4)
    assert margin.rows == 1
    for _ in range(MAX_EXTRA_ROWS + 2):
        margin.record(3, 1)
    assert margin.rows == MAX_EXTRA_ROWS
    for _ in range(CALM_PAGES - 1):
        margin.record(64, 0)
    margin.record(64, 1)  # one short cell: the calm run starts again
    for _ in range(CALM_PAGES - 1):
        margin.record(64, 0)
    assert margin.rows == MAX_EXTRA_ROWS
    margin.record(64, 0)
    assert margin.rows == MAX_EXTRA_ROWS - 1
    assert batch_plan("distributed", 100, 1000, [600, 0], 2, exact=True, extra=2)[0] == [603, 3]
    margin.reset()
    assert margin.rows == 0


def test_the_first_margin_is_wide_for_few_cells_and_narrow_for_many() -> None:
    def margin(cells: int, short_cost: float) -> float:
        _, variance = _draw(1000, 6000 // cells, 6000)
        return first_margin([math.sqrt(variance)] * cells, short_cost)

    # A short cell costs a round of the merge: with few cells a wide margin is cheap
    # insurance; across many small cells it would parse more rows than rounds cost.
    assert margin(3, QUERY_COST_ROWS) >= 1.5
    assert margin(64, STEP_COST_ROWS) <= 0.5
    assert margin(64, STEP_COST_ROWS) < margin(64, QUERY_COST_ROWS)
    assert first_margin([], QUERY_COST_ROWS) == 0.0
    assert first_margin([0.0, 0.0], QUERY_COST_ROWS) == 0.0


def test_batch_plan_sizes_first_batches_by_weight() -> None:
    first, _ = batch_plan("distributed", 10, 1000, [1500, 1500, 1500, 1500, 0], 5)
    assert first[4] == 1  # holds nothing
    assert all(250 < size < 300 for size in first[:4])
    stepped, _ = batch_plan("distributed", 10, 1000, [94] * 64, 64, reads_open=True)
    queried, _ = batch_plan("distributed", 10, 1000, [94] * 64, 64)
    assert sum(stepped) <= sum(queried)  # a short cell costs less when its read is open
    assert 1000 <= sum(stepped)
    fixed, refill = batch_plan("fixed", 10, 1000, [94] * 64, 64)
    assert fixed == [10] * 64 and refill(500, 0.5) == 10


def test_ties_in_the_first_key_are_ordered_by_the_next_keys() -> None:
    """One sort on the first key does when it has no ties; with ties the next keys
    (here ascending under a descending first key) order them, NULL-free."""
    getter = values_getter([0, 1])
    order = merge_order((True, False))
    columns = ((0, 1), (True, False))
    a = [(5, "b"), (4, "a"), (3, "c")]
    b = [(5, "a"), (4, "c"), (2, "z")]
    sources = [SortedSource(rows, 10, lambda after, n: [], _refill, getter) for rows in (a, b)]
    rows, more = merge_sources(sources, order, 10, columns)
    assert rows == [(5, "a"), (5, "b"), (4, "a"), (4, "c"), (3, "c"), (2, "z")] and not more
    untied = [SortedSource([(3, "a")], 10, lambda after, n: [], _refill, getter)]
    untied.append(SortedSource([(4, "z"), (1, "b")], 10, lambda after, n: [], _refill, getter))
    rows, _ = merge_sources(untied, order, 10, columns)
    assert rows == [(4, "z"), (3, "a"), (1, "b")]


def _refill(want: int | None, density: float | None) -> int | None:
    return want


def test_a_source_filled_up_to_the_page_end_is_never_short_again() -> None:
    a, b, c = Cell("a", range(200, 100, -2)), Cell("b", range(199, 100, -2)), Cell("c", range(10))
    sources = [a.source(3), b.source(3), c.source(10)]
    by_id = {id(source): cell for source, cell in zip(sources, (a, b, c), strict=True)}
    seen: list[Any] = []

    def refill_many(wanted: Sequence[tuple[SortedSource, int]], through: Any) -> None:
        seen.append(through)
        for source, _ in wanted:  # every row up to the page end so far, and one past it
            cell = by_id[id(source)]
            rest = cell.after(source.after(), None)
            upto = [row for row in rest if row[0] >= through[0]]
            source.extend_through(rest[: len(upto) + 1], len(rest) > len(upto) + 1, through)

    rows, more = merge_sources(sources, ORDER, 8, COLUMNS, refill_many)
    # a and b gave 3 rows each (200..195), c's 10 are far below: the page's end so far
    # is c's row at position 7 (value 8); a and b are filled up to it in one round.
    assert seen == [(8,)]
    assert [value for (value,) in rows] == list(range(200, 192, -1)) and more

    short = [Cell("a", range(100, 90, -1)).source(2), Cell("b", range(50, 40, -1)).source(2)]
    passed: list[Any] = []

    def sized(wanted: Sequence[tuple[SortedSource, int]], through: Any) -> None:
        passed.append(through)
        for source, size in wanted:
            source.extend([], size)

    merge_sources(short, ORDER, 10, COLUMNS, sized)
    assert passed == [None]  # the pool holds no full page yet: no page end to fill up to
