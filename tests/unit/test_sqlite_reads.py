"""SQLite cells' reads kept open for a page: one query per cell, connections given back."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlite_cells
from oslo_config import cfg

from cellrouter import exception
from cellrouter.across import sqlite_reads
from cellrouter.across.instance_list import list_instances
from cellrouter.across.lister import _CellQuery
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext
from cellrouter.index.cell_mapping import CellMapping

pytestmark = pytest.mark.usefixtures("lists_by_counts")


@pytest.fixture
def cells(cell_template: Path, api_db: str, admin_ctx: RequestContext) -> list[CellMapping]:
    return [sqlite_cells.new_cell(admin_ctx, cell_template, f"open{n}") for n in range(4)]


def _fill(cells: list[CellMapping], counts: list[int]) -> list[str]:
    """``counts[i]`` instances in cell i; cell 0's are the newest. Newest first.

    Their mappings have no creation time: the page is apportioned by the cells'
    instance counts, so a cell may run short (reads are kept open for that).
    """
    start = datetime.datetime(2024, 1, 1)
    return sqlite_cells.fill(
        cells,
        counts,
        lambda position, index: start - datetime.timedelta(hours=position, seconds=index),
        "p",
        mapping_times=False,
    )


def _selects(cells: list[CellMapping]) -> dict[str, int]:
    return sqlite_cells.count_statements(cells, "FROM instances")


def _checked_out(cells: list[CellMapping]) -> int:
    return sum(registry.get(cell).engine.pool.checkedout() for cell in cells)  # type: ignore[attr-defined]


def _batches(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Each cell's batches: its first (the size asked), then each next one (the
    size asked, or "up to the page end")."""
    asked: dict[str, list[Any]] = {}
    first, following = _CellQuery.fetch_sized, _CellQuery.fetch_next

    def fetch_sized(query: _CellQuery, cctx: RequestContext, after: Any, sizes: Any, *rest: Any):  # type: ignore[no-untyped-def]
        asked.setdefault(cctx.cell_uuid or "", []).append(sizes[cctx.cell_uuid])
        return first(query, cctx, after, sizes, *rest)

    def fetch_next(query: _CellQuery, cctx: RequestContext, batches: Any, *rest: Any):  # type: ignore[no-untyped-def]
        _, size, past = batches[cctx.cell_uuid]
        asked.setdefault(cctx.cell_uuid or "", []).append("to the page end" if past else size)
        return following(query, cctx, batches, *rest)

    monkeypatch.setattr(_CellQuery, "fetch_sized", fetch_sized)
    monkeypatch.setattr(_CellQuery, "fetch_next", fetch_next)
    return asked


def test_a_short_cell_steps_on_its_open_read_instead_of_querying_again(
    cells: list[CellMapping], admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Skewed: cell 0 holds the newest 100 rows, so its first batch (a quarter of
    # the page plus a margin) is short and it is asked again.
    newest_first = _fill(cells, [100, 100, 100, 100])
    selects = _selects(cells)
    asked = _batches(monkeypatch)
    page = list_instances(admin_ctx, limit=120, as_dicts=False)
    assert [row.uuid for row in page.rows] == newest_first[:120]
    # Its batch proved short: it stepped on, up to the page's end, in one more round.
    assert asked[cells[0].uuid][1:] == ["to the page end"]
    assert selects == {cell.uuid: 1 for cell in cells}  # never queried twice
    assert _checked_out(cells) == 0  # every read closed with the page


def test_without_room_for_open_reads_each_batch_is_its_own_query(
    conf: cfg.ConfigOpts,
    cells: list[CellMapping],
    admin_ctx: RequestContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf.set_override("max_cell_connections", 6, group="cells")  # room for 3 open reads
    newest_first = _fill(cells, [100, 100, 100, 100])
    selects = _selects(cells)
    asked = _batches(monkeypatch)
    page = list_instances(admin_ctx, limit=120, as_dicts=False)
    assert [row.uuid for row in page.rows] == newest_first[:120]
    assert selects[cells[0].uuid] == len(asked[cells[0].uuid]) >= 2
    assert all(isinstance(size, int) for size in asked[cells[0].uuid])
    assert _checked_out(cells) == 0


def test_reads_are_closed_when_the_page_fails(
    conf: cfg.ConfigOpts,
    cells: list[CellMapping],
    admin_ctx: RequestContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf.set_override("list_records_by_skipping_down_cells", False, group="cells")
    _fill(cells, [100, 100, 100, 100])
    real = _CellQuery.fetch
    broken = cells[3].uuid

    def fetch(query: _CellQuery, cctx: RequestContext, *args: Any) -> Any:
        if cctx.cell_uuid == broken:
            raise sa.exc.OperationalError("SELECT", {}, Exception("disk I/O error"))
        return real(query, cctx, *args)

    monkeypatch.setattr(_CellQuery, "fetch", fetch)
    with pytest.raises(exception.CellUnavailable, match="disk I/O error"):
        list_instances(admin_ctx, limit=120)
    assert _checked_out(cells) == 0


def test_the_budget_of_open_reads(conf: cfg.ConfigOpts) -> None:
    conf.set_override("max_cell_connections", 10, group="cells")
    assert sqlite_reads.reserve(3)
    assert not sqlite_reads.reserve(3)  # 6 > half of 10
    assert sqlite_reads.reserve(2)
    sqlite_reads.release(5)
    assert sqlite_reads.reserve(5)
    sqlite_reads.release(5)


class _Result:
    """A result whose fetchmany blocks until released (a read stuck on its file)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.closed = False

    def fetchmany(self, size: int) -> list[int]:
        self.entered.set()
        self.release.wait(10)
        return list(range(size))

    def close(self) -> None:
        self.closed = True


class _Conn:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_read_busy_when_its_page_ends_is_closed_by_its_worker() -> None:
    result, conn = _Result(), _Conn()
    read = sqlite_reads.OpenRead(conn, result)  # type: ignore[arg-type]
    page = sqlite_reads.PageReads(100)
    page.add("cell", read)
    worker = threading.Thread(target=read.take, args=(5,))
    worker.start()
    assert result.entered.wait(5)
    page.close()  # the page is over while the worker steps the read
    assert not conn.closed
    result.release.set()
    worker.join(5)
    assert conn.closed and result.closed
    with pytest.raises(sa.exc.InvalidRequestError):
        read.take(1)
    page.add("late", sqlite_reads.OpenRead(late := _Conn(), _Result()))  # type: ignore[arg-type]
    assert late.closed  # a read opened after its page ended is closed at once
