"""The cross-cell list and scatter at scale: one query per cell that holds rows, and
threads and connections bounded whatever the number of cells (SQLite files)."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlite_cells
from oslo_config import cfg
from sqlalchemy import event
from sqlalchemy.engine import Row

from cellrouter import workers
from cellrouter.across import sqlite_reads
from cellrouter.across.instance_list import list_instances
from cellrouter.across.scatter import is_cell_failure, scatter_gather_all_cells
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext
from cellrouter.db.cell_schema import instances
from cellrouter.db.database import api_engine
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping

MakeCells = Callable[..., list[CellMapping]]


pytestmark = pytest.mark.usefixtures("lists_by_counts")

_cell = sqlite_cells.new_cell


def _fill(cells: list[CellMapping], per_cell: int, project: str = "p1") -> list[str]:
    """``per_cell`` mapped instances in each cell, interleaved in time; newest first."""
    start = datetime.datetime(2024, 1, 1)
    return sqlite_cells.fill(
        cells,
        [per_cell] * len(cells),
        lambda position, index: start + datetime.timedelta(seconds=index * len(cells) + position),
        project,
    )


def test_a_page_queries_each_cell_holding_rows_once_and_an_empty_cell0_never(
    api_db: str, cell_template: Path, admin_ctx: RequestContext
) -> None:
    cell0 = _cell(admin_ctx, cell_template, "cell0", uuid=CELL0_UUID)
    cells = [_cell(admin_ctx, cell_template, f"cell{n}") for n in (1, 2, 3)]
    newest_first = _fill(cells, 40)
    statements = sqlite_cells.count_statements([cell0, *cells])

    page = list_instances(admin_ctx, limit=60)
    assert [row["uuid"] for row in page.rows] == newest_first[:60]
    assert statements == {cell0.uuid: 0, **{cell.uuid: 1 for cell in cells}}

    # The whole walk: one query per non-empty cell and page, Rows when asked.
    for counter in statements:
        statements[counter] = 0
    walked: list[str] = []
    marker, pages = None, 0
    while True:
        page = list_instances(admin_ctx, limit=50, marker=marker, as_dicts=False)
        assert all(isinstance(row, Row) for row in page.rows)
        walked += [row.uuid for row in page.rows]
        pages, marker = pages + 1, page.next_marker
        if marker is None:
            break
    assert walked == newest_first and pages == 3
    # + the marker lookups: one in the marker's own cell per page after the first
    assert statements[cell0.uuid] == 0
    assert sum(statements.values()) <= len(cells) * pages + (pages - 1)

    # A project's list skips the cells without its instances.
    mine = _fill(cells[2:], 5, project="p-mine")
    for counter in statements:
        statements[counter] = 0
    page = list_instances(admin_ctx, filters={"project_id": "p-mine"})
    assert [row["uuid"] for row in page.rows] == mine
    assert statements == {cell0.uuid: 0, cells[0].uuid: 0, cells[1].uuid: 0, cells[2].uuid: 1}


@pytest.mark.parametrize(
    "filters", [{}, {"project_id": "p1"}, {"project_id": ["p1", "p2"]}], ids=["all", "one", "two"]
)
def test_a_cell_mapped_after_its_counts_were_cached_is_listed_at_once(
    api_db: str, cell_template: Path, admin_ctx: RequestContext, filters: dict[str, Any]
) -> None:
    a, b = (_cell(admin_ctx, cell_template, name) for name in ("a", "b"))
    first = _fill([a], 3)
    assert [row["uuid"] for row in list_instances(admin_ctx, filters=filters).rows] == first
    later = _fill([b], 2)  # b was counted empty a moment ago
    listed = {row["uuid"] for row in list_instances(admin_ctx, filters=filters).rows}
    assert listed == set(first) | set(later)


def test_empty_cells_are_checked_only_against_cached_counts(
    api_db: str, cell_template: Path, admin_ctx: RequestContext
) -> None:
    cell0 = _cell(admin_ctx, cell_template, "cell0", uuid=CELL0_UUID)
    cells = [_cell(admin_ctx, cell_template, f"cell{n}") for n in (1, 2)]
    newest_first = _fill(cells, 5)
    selects: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "instance_mappings" in statement:
            selects.append(statement)

    event.listen(api_engine(), "before_cursor_execute", record)
    try:
        # Counts just read: the empty cell0 needs no EXISTS look.
        assert [row["uuid"] for row in list_instances(admin_ctx, cells=[cell0, *cells]).rows] == (
            newest_first
        )
        assert len(selects) == 1 and "count" in selects[0].lower()
        # Counts from the cache: one EXISTS look at the cells counted empty.
        selects.clear()
        list_instances(admin_ctx, cells=[cell0, *cells])
        assert len(selects) == 1 and "exists" in selects[0].lower()
    finally:
        event.remove(api_engine(), "before_cursor_execute", record)


def test_200_cells_keep_threads_and_connections_under_their_caps(
    conf: cfg.ConfigOpts,
    api_db: str,
    cell_template: Path,
    admin_ctx: RequestContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    max_threads, max_connections = 8, 16
    conf.set_override("max_worker_threads", max_threads, group="cells")
    conf.set_override("max_cell_connections", max_connections, group="cells")
    monkeypatch.setattr(workers, "_pool", workers._Pool())
    cells = [_cell(admin_ctx, cell_template, f"c{n}") for n in range(200)]
    newest_first = _fill(cells, 2)
    peaks = {"threads": 0, "connections": 0}
    lock = threading.Lock()

    def sample(*_args: Any) -> None:
        with lock:
            peaks["threads"] = max(peaks["threads"], workers.stats()[0])
            peaks["connections"] = max(peaks["connections"], registry.open_connections())

    for cell in cells:
        event.listen(registry.get(cell).engine, "before_cursor_execute", sample)

    def count(cctx: RequestContext) -> int:
        sample()
        with cctx.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(instances)).scalar())

    for _ in range(2):
        results = scatter_gather_all_cells(admin_ctx, count)
        assert not any(is_cell_failure(value) for value in results.values()), results
        assert sum(results.values()) == 400
    walked: list[str] = []
    marker = None
    while True:
        page = list_instances(admin_ctx, limit=150, marker=marker)
        assert not page.partial, page.failed_cells
        walked += [row["uuid"] for row in page.rows]
        marker = page.next_marker
        if marker is None:
            break
    assert walked == newest_first
    assert 0 < peaks["threads"] <= max_threads
    assert 0 < peaks["connections"] <= max_connections
    assert registry.open_connections() <= max_connections
    assert workers.stats()[0] <= max_threads


def test_sqlite_cells_read_their_rows_one_at_a_time(
    api_db: str, cell_template: Path, admin_ctx: RequestContext
) -> None:
    """sqlite3 drops the GIL on every row step: cells read in parallel would only pass
    it back and forth, so SQLite cells take turns (the scatter still runs in threads)."""
    cells = [_cell(admin_ctx, cell_template, f"turn{i}") for i in range(6)]
    expected = _fill(cells, 5)
    active, most = [0], [0]
    lock = threading.Lock()

    def enter(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM instances" in statement:
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            threading.Event().wait(0.01)  # long enough for the other cells to start meanwhile
            with lock:
                active[0] -= 1

    for cell in cells:
        event.listen(registry.get(cell).engine, "before_cursor_execute", enter)
    page = list_instances(admin_ctx, limit=len(expected), as_dicts=False)
    assert [row.uuid for row in page.rows] == expected
    assert most[0] == 1


def test_a_sqlite_read_that_hangs_does_not_hold_the_other_cells_up(
    api_db: str, cell_template: Path, admin_ctx: RequestContext
) -> None:
    cells = [_cell(admin_ctx, cell_template, f"stuck{i}") for i in range(3)]
    _fill(cells, 5)
    stuck, release = cells[0], threading.Event()

    def hang(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM instances" in statement:
            release.wait(10)  # a read stuck in the database, holding its turn

    event.listen(registry.get(stuck).engine, "before_cursor_execute", hang)
    try:
        page = list_instances(admin_ctx, cells=cells, limit=100, timeout=1.0, as_dicts=False)
    finally:
        release.set()
    assert page.failed_cells == {stuck.uuid: "did not respond"}
    assert len(page.rows) == 10  # the other two cells answered


def test_a_turn_held_past_its_wait_is_not_waited_for_again() -> None:
    """A read stuck holding its turn costs each read one wait at most, and reads that
    come once it has held the turn that long none: 60 cells behind a stuck one do not
    wait 60 times."""
    turns = sqlite_reads.Turns()
    taken, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with turns:
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=stuck)
    thread.start()
    try:
        assert taken.wait(5)
        start = time.monotonic()
        with turns:  # waits for the turn, then reads anyway
            waited = time.monotonic() - start
        start = time.monotonic()
        for _ in range(20):
            with turns:
                pass
        after = time.monotonic() - start
    finally:
        release.set()
        thread.join(5)
    assert waited >= sqlite_reads.TURN_WAIT * 0.5
    assert after < sqlite_reads.TURN_WAIT  # 20 reads, no wait between them
    with turns:  # the turn was released: taken at once
        assert turns.lock.locked()
