"""Markers a lister handed out: the next page starts without reading the marker again,
when the page is sorted on columns that never change (``created_at``, ``uuid``)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from cellrouter import exception
from cellrouter.across import health, lister
from cellrouter.across.instance_list import _INSTANCES, list_instances
from cellrouter.across.issued_markers import IssuedMarkers
from cellrouter.across.lister import CrossCellLister
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext
from cellrouter.db.cell_schema import instances
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]


pytestmark = pytest.mark.usefixtures("fresh_listing")


@pytest.fixture
def marker_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The markers read in their cells (each call of the lister's marker read)."""
    read: list[str] = []
    real = lister._read_sort_values

    def counted(cctx: RequestContext, *args: Any) -> Any:
        read.append(args[-1])
        return real(cctx, *args)

    monkeypatch.setattr(lister, "_read_sort_values", counted)
    return read


@pytest.fixture
def nine(make_cells: MakeCells, make_instance: MakeInstance) -> tuple[list[CellMapping], list[str]]:
    """Three cells of three instances each; the uuids newest first (the default order)."""
    cells = make_cells(3)
    made = [
        make_instance(cells[minute % 3], created_at=datetime.datetime(2024, 5, 1, 12, minute))
        for minute in range(9)
    ]
    return cells, made[::-1]


def _walk(ctx: RequestContext, limit: int, **kwargs: Any) -> list[str]:
    walked: list[str] = []
    marker = None
    while True:
        page = list_instances(ctx, limit=limit, marker=marker, **kwargs)
        walked += [row["uuid"] for row in page.rows]
        marker = page.next_marker
        if marker is None:
            return walked


def test_a_walk_reads_none_of_the_markers_it_was_handed(
    nine: tuple[list[CellMapping], list[str]], admin_ctx: RequestContext, marker_reads: list[str]
) -> None:
    _, newest_first = nine
    assert _walk(admin_ctx, 2) == newest_first
    assert marker_reads == []
    # Ascending, on the same keys: the values are the same, whichever the direction.
    page = list_instances(admin_ctx, limit=2, sort_dirs=["asc"], marker=newest_first[5])
    assert [row["uuid"] for row in page.rows] == newest_first[4:2:-1]
    assert marker_reads == []
    # A marker this process did not hand out (another API worker did) is read.
    _INSTANCES.reset()
    page = list_instances(admin_ctx, limit=2, marker=newest_first[1])
    assert [row["uuid"] for row in page.rows] == newest_first[2:4]
    assert marker_reads == [newest_first[1]]


def test_a_page_sorted_on_a_key_that_changes_reads_its_marker_again(
    make_cells: MakeCells,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    marker_reads: list[str],
) -> None:
    cells = make_cells(2)
    made = {name: make_instance(cells[i % 2], display_name=name) for i, name in enumerate("abcdef")}
    first = list_instances(admin_ctx, sort_keys=["display_name"], sort_dirs=["asc"], limit=2)
    assert first.next_marker == made["b"]
    # Renamed since: like Nova, the next page starts after the marker's new name.
    cell = next(
        c
        for c in cells
        if c.uuid == InstanceMapping.get_by_instance_uuid(admin_ctx, made["b"]).cell_uuid
    )
    with registry.get(cell).engine.begin() as conn:
        conn.execute(
            sa.update(instances).where(instances.c.uuid == made["b"]).values(display_name="dd")
        )
    second = list_instances(
        admin_ctx, sort_keys=["display_name"], sort_dirs=["asc"], limit=2, marker=first.next_marker
    )
    assert [row["uuid"] for row in second.rows] == [made["e"], made["f"]]
    assert marker_reads == [made["b"]]


def test_a_handed_out_marker_whose_mapping_is_gone_is_invalid(
    nine: tuple[list[CellMapping], list[str]], admin_ctx: RequestContext
) -> None:
    """Archiving an instance deletes its mapping: its marker stops working, as in Nova."""
    page = list_instances(admin_ctx, limit=2)
    assert page.next_marker is not None
    InstanceMapping.get_by_instance_uuid(admin_ctx, page.next_marker).destroy(admin_ctx)
    with pytest.raises(exception.InvalidMarker):
        list_instances(admin_ctx, limit=2, marker=page.next_marker)


def test_a_handed_out_marker_in_a_cell_now_down_still_pages_the_others(
    nine: tuple[list[CellMapping], list[str]], admin_ctx: RequestContext
) -> None:
    """The marker's values are known: its cell being down costs only that cell's rows
    (a marker read there would fail the whole page)."""
    cells, newest_first = nine
    page = list_instances(admin_ctx, limit=2)
    marker_cell = next(
        c
        for c in cells
        if c.uuid == InstanceMapping.get_by_instance_uuid(admin_ctx, newest_first[1]).cell_uuid
    )
    health.record_failure(marker_cell, exception.CellUnavailable(cell="c", reason="test"))
    rest = list_instances(admin_ctx, limit=10, marker=page.next_marker)
    assert rest.down_cells == (marker_cell.uuid,)
    up = {
        uuid
        for uuid in newest_first
        if InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_uuid != marker_cell.uuid
    }
    assert [row["uuid"] for row in rest.rows] == [u for u in newest_first[2:] if u in up]


class _FixedKeysLister(CrossCellLister):
    table = instances
    fixed_keys = frozenset({"created_at", "uuid"})


def test_a_handed_out_marker_counts_only_in_the_cells_asked(
    nine: tuple[list[CellMapping], list[str]], admin_ctx: RequestContext, marker_reads: list[str]
) -> None:
    """The generic lister finds a marker in the cells asked: one it handed out from a
    cell not asked is as unknown there as before."""
    cells, newest_first = nine
    fixed = _FixedKeysLister()
    page = fixed.page(admin_ctx, limit=2)
    assert page.next_marker == newest_first[1]
    home = next(
        c
        for c in cells
        if c.uuid == InstanceMapping.get_by_instance_uuid(admin_ctx, newest_first[1]).cell_uuid
    )
    others = [cell for cell in cells if cell is not home]
    with pytest.raises(exception.InvalidMarker):
        fixed.page(admin_ctx, limit=2, marker=page.next_marker, cells=others)
    assert marker_reads == [newest_first[1], newest_first[1]]  # looked for in both
    rest = fixed.page(admin_ctx, limit=2, marker=page.next_marker, cells=[home])
    assert [row["uuid"] for row in rest.rows] == [
        u
        for u in newest_first[2:]
        if InstanceMapping.get_by_instance_uuid(admin_ctx, u).cell_uuid == home.uuid
    ][:2]
    assert len(marker_reads) == 2  # handed out from that cell: not read again
    # Without fixed keys (the default), every marker is looked for in every cell.
    plain = CrossCellLister(instances)
    first = plain.page(admin_ctx, limit=2)
    plain.page(admin_ctx, limit=2, marker=first.next_marker)
    assert len(marker_reads) == 2 + len(cells)


def test_issued_markers_are_bounded_and_keyed_by_sort_keys() -> None:
    issued = IssuedMarkers(size=3)
    keys = ("created_at", "uuid")
    for index in range(5):
        issued.remember(f"m{index}", keys, "cell", (index, f"m{index}"))
    assert len(issued) == 3
    assert issued.get("m0", keys) is None and issued.get("m1", keys) is None
    assert issued.get("m4", keys) == ("cell", (4, "m4"))
    assert issued.get("m4", ("uuid",)) is None  # handed out for other keys
    issued.clear()
    assert len(issued) == 0 and issued.get("m4", keys) is None
