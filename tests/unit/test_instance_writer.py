"""Writing instance rows in a cell, and serving RPC on a cell's queue (public API)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import cellrouter
from cellrouter import exception
from cellrouter.index.cell_mapping import CellMapping

MakeCells = Callable[..., list[CellMapping]]


def test_create_update_destroy_an_instance(
    make_cells: MakeCells, admin_ctx: cellrouter.RequestContext
) -> None:
    (cell,) = make_cells(1)
    with cellrouter.target_cell(admin_ctx, cell) as cctx:
        uuid = cellrouter.create_instance(
            cctx, project_id="p1", user_id="u1", host="h1", vm_state="building"
        )
        row = cellrouter.get_instance(cctx, uuid)
        assert (row["project_id"], row["host"], row["vm_state"], row["deleted"]) == (
            "p1", "h1", "building", 0,
        )  # fmt: skip
        assert row["created_at"] is not None

        cellrouter.update_instance(cctx, uuid, vm_state="active", task_state=None)
        row = cellrouter.get_instance(cctx, uuid)
        assert row["vm_state"] == "active" and row["updated_at"] is not None

        cellrouter.destroy_instance(cctx, uuid)
        with pytest.raises(exception.InstanceNotFound):
            cellrouter.get_instance(cctx, uuid)  # read_deleted="no"
        with pytest.raises(exception.InstanceNotFound):
            cellrouter.destroy_instance(cctx, uuid)  # already deleted
        with pytest.raises(exception.InstanceNotFound):
            cellrouter.update_instance(cctx, uuid, vm_state="error")


def test_soft_delete_keeps_the_row_for_readers_of_deleted_rows(
    make_cells: MakeCells, admin_ctx: cellrouter.RequestContext
) -> None:
    (cell,) = make_cells(1)
    with cellrouter.target_cell(admin_ctx, cell) as cctx:
        uuid = cellrouter.create_instance(cctx, project_id="p1")
        cellrouter.destroy_instance(cctx, uuid)
    with cellrouter.target_cell(admin_ctx.elevated(read_deleted="only"), cell) as cctx:
        row = cellrouter.get_instance(cctx, uuid)
    assert row["deleted"] == row["id"] and row["deleted_at"] is not None


@pytest.mark.parametrize("bad", [{"deleted": 1}, {"id": 7}, {"no_such_column": 1}])
def test_writers_refuse_columns_they_do_not_own(
    make_cells: MakeCells, admin_ctx: cellrouter.RequestContext, bad: dict[str, Any]
) -> None:
    (cell,) = make_cells(1)
    with cellrouter.target_cell(admin_ctx, cell) as cctx:
        with pytest.raises(exception.InvalidValue):
            cellrouter.create_instance(cctx, **bad)
        uuid = cellrouter.create_instance(cctx)
        with pytest.raises(exception.InvalidValue):
            cellrouter.update_instance(cctx, uuid, **bad)


def test_an_rpc_server_on_a_cells_queue_gets_the_instances_casts(
    make_cells: MakeCells, admin_ctx: cellrouter.RequestContext
) -> None:
    (cell,) = make_cells(1)
    got = threading.Event()
    seen: list[str] = []

    class Compute:
        def reboot(self, ctxt: dict[str, Any], instance_uuid: str) -> None:
            seen.append(instance_uuid)
            got.set()

    with cellrouter.target_cell(admin_ctx, cell) as cctx:
        uuid = cellrouter.create_instance(cctx, host="host1")
        server = cctx.rpc_server("compute", "host1", [Compute()])
    cellrouter.InstanceMapping.create(
        admin_ctx, instance_uuid=uuid, cell_mapping=cell, project_id="p1"
    )
    server.start()
    try:
        cellrouter.cast_instance(admin_ctx, uuid, "reboot")
        assert got.wait(10), "the cast never reached the cell's compute server"
    finally:
        server.stop()
        server.wait()
    assert seen == [uuid]


def test_a_cell_without_a_queue_has_no_rpc_server(
    api_db: str, admin_ctx: cellrouter.RequestContext, make_cells: MakeCells
) -> None:
    (cell,) = make_cells(1)
    cell0 = CellMapping.create(
        admin_ctx,
        uuid=cellrouter.CELL0_UUID,
        name="cell0",
        database_connection=cell.database_connection,
        transport_url="none:///",
    )
    with cellrouter.target_cell(admin_ctx, cell0) as cctx:
        with pytest.raises(exception.CellHasNoQueue):
            cctx.rpc_server("compute", "host1", [])
