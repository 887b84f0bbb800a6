"""A page in creation order apportioned by the mappings: each cell asked for exactly
its rows on the page and one more (SQLite files)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlite_cells
from oslo_config import cfg

from cellrouter.across import merge
from cellrouter.across.instance_counts import instance_counts
from cellrouter.across.instance_list import list_instances
from cellrouter.across.lister import _CellQuery
from cellrouter.cells.context import RequestContext
from cellrouter.db.api_schema import instance_mappings
from cellrouter.db.database import api_engine
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping

pytestmark = pytest.mark.usefixtures("lists_by_counts", "shares_always_pay")


@pytest.fixture
def shares_always_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Page shares asked for however few cells and rows (they pay from ~8 cells on)."""
    monkeypatch.setattr(merge, "SHARES_COST_ROWS", -1.0)


def _shares(cells: list[CellMapping], *args: Any) -> Any:
    """``InstanceCounts.page_shares`` of ``cells`` (live instances, all projects)."""
    counts = instance_counts()
    held = counts.estimates(cells, None, False)
    assert held is not None
    return counts.page_shares(held, cells, None, False, *args)


START = datetime.datetime(2024, 1, 1)


@pytest.fixture
def cells(cell_template: Path, api_db: str, admin_ctx: RequestContext) -> list[CellMapping]:
    """An empty cell0 and three cells."""
    cell0 = sqlite_cells.new_cell(admin_ctx, cell_template, "cell0", uuid=CELL0_UUID)
    return [cell0, *(sqlite_cells.new_cell(admin_ctx, cell_template, f"c{n}") for n in (1, 2, 3))]


def _skewed(cells: list[CellMapping], counts: list[int], project: str = "p1") -> list[str]:
    """``counts[i]`` instances in ``cells[i]``, the cells' rows in blocks of time (the
    first cell's the newest, then the next cell's...), so an even split would be
    short everywhere; newest first."""
    return sqlite_cells.fill(
        cells,
        counts,
        lambda position, index: START - datetime.timedelta(hours=position, seconds=index),
        project,
    )


def _map_at(newest_first: list[str], at: Callable[[int], datetime.datetime]) -> None:
    """Give the mapping of ``newest_first[index]`` the creation time ``at(index)``."""
    im = instance_mappings
    with api_engine().begin() as conn:
        conn.execute(
            sa.update(im).where(im.c.instance_uuid == sa.bindparam("uuid")),
            [{"uuid": uuid, "created_at": at(index)} for index, uuid in enumerate(newest_first)],
        )


def _first_batches(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int | None]]:
    """The size each cell's first batch asks for, and how many batches each cell gave."""
    asked: dict[str, list[int | None]] = {}
    real = _CellQuery.fetch

    def fetch(query: _CellQuery, cctx: RequestContext, after: Any, limit: Any, *rest: Any) -> Any:
        asked.setdefault(cctx.cell_uuid or "", []).append(limit)
        return real(query, cctx, after, limit, *rest)

    monkeypatch.setattr(_CellQuery, "fetch", fetch)
    return asked


def test_each_cell_is_asked_for_its_rows_on_the_page_and_one_more(
    cells: list[CellMapping], admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell0, a, b, c = cells
    newest_first = _skewed([a, b, c], [50, 30, 40])
    selects = sqlite_cells.count_statements(cells, "FROM instances")
    asked = _first_batches(monkeypatch)

    page = list_instances(admin_ctx, limit=70, as_dicts=False)
    assert [row.uuid for row in page.rows] == newest_first[:70]
    # a holds the newest 50, b the next 20 of the page, c none of it: no cell
    # is short, none is asked twice, the empty cell0 not at all.
    assert asked == {a.uuid: [51], b.uuid: [21], c.uuid: [1]}
    assert selects == {cell0.uuid: 0, a.uuid: 1, b.uuid: 1, c.uuid: 1}

    # The next page, after the marker: b's last 10 and c's first 40.
    asked.clear()
    page = list_instances(admin_ctx, limit=50, marker=page.next_marker, as_dicts=False)
    assert [row.uuid for row in page.rows] == newest_first[70:120]
    assert asked == {a.uuid: [1], b.uuid: [11], c.uuid: [41]}


def test_a_project_page_counts_that_projects_mappings(
    cells: list[CellMapping], admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, a, b, c = cells
    _skewed([a, b, c], [30, 30, 30], project="others")
    mine = _skewed([c, b], [5, 8], project="mine")
    asked = _first_batches(monkeypatch)
    page = list_instances(admin_ctx, limit=10, filters={"project_id": "mine"})
    assert [row["uuid"] for row in page.rows] == mine[:10]
    assert asked == {c.uuid: [6], b.uuid: [6]}


def test_a_page_of_some_cells_counts_their_mappings_alone(
    cells: list[CellMapping], admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, a, b, c = cells
    newest_first = _skewed([a, b, c], [20, 20, 20])
    asked = _first_batches(monkeypatch)
    page = list_instances(admin_ctx, limit=30, cells=[b, c])
    assert [row["uuid"] for row in page.rows] == newest_first[20:50]
    assert asked == {b.uuid: [21], c.uuid: [11]}


def test_mapping_times_that_disagree_with_the_instances_cost_batches_not_rows(
    cells: list[CellMapping], admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, a, b, c = cells
    newest_first = _skewed([a, b, c], [20, 20, 20])
    # Mapped in the opposite order: the mappings say c's rows are the newest.
    _map_at(newest_first, lambda index: START + datetime.timedelta(seconds=index))
    asked = _first_batches(monkeypatch)
    walked: list[str] = []
    marker = None
    while True:
        page = list_instances(admin_ctx, limit=25, marker=marker)
        walked += [row["uuid"] for row in page.rows]
        marker = page.next_marker
        if marker is None:
            break
    assert walked == newest_first
    assert len(asked[a.uuid]) > 1  # short on the first page: asked again


def test_cells_running_short_on_exact_shares_teach_a_margin(
    cells: list[CellMapping], admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, a, b, c = cells
    # Interleaved in time, a second apart: newest_first[i] is in cell i % 3.
    newest_first = sqlite_cells.fill(
        [a, b, c],
        [30, 30, 30],
        lambda position, index: START - datetime.timedelta(seconds=3 * index + position),
        "p1",
    )
    # a's mappings were made 12 s after its instances: the shares give a three
    # rows too many, b one too few and c two (one more than the row after covers).
    _map_at(
        newest_first,
        lambda index: START - datetime.timedelta(seconds=index - 12 * (index % 3 == 0)),
    )
    asked = _first_batches(monkeypatch)
    first = list_instances(admin_ctx, limit=30)
    assert [row["uuid"] for row in first.rows] == newest_first[:30]
    assert any(len(batches) > 1 for batches in asked.values())  # some cell ran short
    shares = _shares([a, b, c], 30, True)
    assert shares is not None and min(shares.values()) + 2 < 30, shares

    # The next page like it asks each cell for one row more than its share (and
    # the one after), never more than the page.
    asked.clear()
    again = list_instances(admin_ctx, limit=30)
    assert [row["uuid"] for row in again.rows] == newest_first[:30]
    assert {uuid: batches[0] for uuid, batches in asked.items()} == {
        uuid: min(30, share + 2) for uuid, share in shares.items()
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"sort_keys": ["display_name"]}, id="another-sort-key"),
        pytest.param({"filters": {"host": None}}, id="a-filter-mappings-cannot-tell"),
        pytest.param({"filters": {"project_id": ["p1", "p2"]}}, id="several-projects"),
        pytest.param({"read_deleted": "yes"}, id="deleted-and-live"),
        pytest.param({"limit": None}, id="no-limit"),
        pytest.param({"mapping_times": False}, id="mappings-without-times"),
        pytest.param({"strategy": "fixed"}, id="fixed-batches"),
        pytest.param({"pay": False}, id="too-few-cells-to-pay"),
    ],
)
def test_pages_the_mappings_cannot_apportion_are_sized_by_counts(
    conf: cfg.ConfigOpts,
    cells: list[CellMapping],
    admin_ctx: RequestContext,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
) -> None:
    _, a, b, c = cells
    mapping_times = kwargs.pop("mapping_times", True)
    read_deleted = kwargs.pop("read_deleted", "no")
    if not kwargs.pop("pay", True):
        monkeypatch.undo()  # the cost the shares are weighed at, as shipped
    conf.set_override("list_batch_strategy", kwargs.pop("strategy", "distributed"), group="cells")
    sqlite_cells.fill(
        [a, b, c],
        [30, 30, 30],
        lambda position, index: START - datetime.timedelta(hours=position, seconds=index),
        "p1",
        mapping_times=mapping_times,
    )
    shares: list[Any] = []
    real = type(instance_counts()).page_shares

    def page_shares(counts: Any, *args: Any) -> Any:
        shares.append(real(counts, *args))
        return shares[-1]

    monkeypatch.setattr(type(instance_counts()), "page_shares", page_shares)
    ctx = admin_ctx.elevated(read_deleted=read_deleted)
    page = list_instances(ctx, **{"limit": 40, **kwargs})
    assert len(page.rows) == (40 if kwargs.get("limit", 40) else 90)
    assert shares in ([], [None])  # not asked, or could not say


def test_the_last_page_of_a_walk_is_sized_by_counts(
    cells: list[CellMapping], admin_ctx: RequestContext
) -> None:
    _, a, b, c = cells
    _skewed([a, b, c], [10, 10, 10])
    assert _shares([a, b, c], 20, True) == {
        a.uuid: 10,
        b.uuid: 10,
        c.uuid: 0,
    }
    # Fewer than a page of mappings past this time: the mappings cannot say
    # whether the counts are stale or the times missing.
    late = START - datetime.timedelta(hours=1, seconds=5)
    assert _shares([a, b, c], 20, True, late) is None
