"""route_instance: instance uuid -> (cell, host), and every way it can fail."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable

import pytest
from oslo_config import cfg

from cellrouter import exception
from cellrouter.cells.context import RequestContext, get_admin_context
from cellrouter.cells.instance import get_instance
from cellrouter.cells.routing import Route, call_instance, cast_instance, route_instance
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]


def test_found_instance_routes_to_its_cell_and_host(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    c1, c2, c3 = make_cells(3)
    placed = {
        make_instance(cell, host=f"compute-{index}"): (cell, f"compute-{index}")
        for index, cell in enumerate((c1, c2, c3, c2, c1))
    }
    for instance_uuid, (cell, host) in placed.items():
        route = route_instance(admin_ctx, instance_uuid)
        assert isinstance(route, Route)
        assert route.host == host
        assert route.cell_uuid == cell.uuid
        assert route.cell_mapping == CellMapping.get_by_uuid(admin_ctx, cell.uuid)


def test_routing_leaves_the_context_untargeted(
    make_cells: MakeCells, make_instance: MakeInstance
) -> None:
    (cell,) = make_cells(1)
    ctx = RequestContext(user_id="u", project_id="project-a")
    route_instance(ctx, make_instance(cell))
    assert ctx.cell_mapping is None


def test_instance_not_on_a_host(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    route = route_instance(admin_ctx, make_instance(cell, host=None))
    assert route.host is None
    assert route.cell_uuid == cell.uuid


def test_rpc_to_an_instance_not_on_a_host_is_a_conflict(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    unplaced = make_instance(cell, host=None)
    for send in (
        lambda: cast_instance(admin_ctx, unplaced, "reboot"),
        lambda: call_instance(admin_ctx, unplaced, "reboot", timeout=1),
    ):
        with pytest.raises(exception.InstanceNotOnHost) as err:
            send()
        assert isinstance(err.value, exception.Conflict)
        assert f"Instance {unplaced} is not on a compute host in cell {cell.identity}" in str(
            err.value
        )


def test_rpc_to_a_cell_without_queue_is_a_conflict(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    cell = cell.update(admin_ctx, transport_url="none:///")
    placed = make_instance(cell, host="compute-1")
    with pytest.raises(exception.CellHasNoQueue) as err:
        cast_instance(admin_ctx, placed, "reboot")
    assert isinstance(err.value, exception.Conflict)
    assert f"Cell {cell.identity} has no message queue" in str(err.value)
    assert err.value.kwargs["uuid"] == cell.uuid


def test_unknown_instance(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    make_cells(1)
    missing = str(uuidlib.uuid4())
    with pytest.raises(exception.InstanceMappingNotFound, match=missing):
        route_instance(admin_ctx, missing)


def test_instance_still_building(api_db: str, admin_ctx: RequestContext) -> None:
    building = str(uuidlib.uuid4())
    InstanceMapping.create(admin_ctx, instance_uuid=building, project_id="p")
    with pytest.raises(exception.InstanceNotScheduled) as err:
        route_instance(admin_ctx, building)
    assert building in str(err.value)
    assert "still building" in str(err.value)
    assert not isinstance(err.value, exception.NotFound)


def test_mapped_instance_missing_from_its_cell(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    c1, c2 = make_cells(2)
    # Mapped to c1, but the row lives in c2: routing must look in c1 only.
    stray = make_instance(c2, mapped=False)
    InstanceMapping.create(admin_ctx, instance_uuid=stray, project_id="p", cell_mapping=c1)
    with pytest.raises(exception.InstanceNotFound) as err:
        route_instance(admin_ctx, stray)
    assert stray in str(err.value)
    assert c1.identity in str(err.value)


def test_soft_deleted_instance_follows_read_deleted(
    make_cells: MakeCells, make_instance: MakeInstance
) -> None:
    (cell,) = make_cells(1)
    deleted = make_instance(cell, host="gone-host", deleted=7)
    alive = make_instance(cell, host="live-host")
    with pytest.raises(exception.InstanceNotFound):
        route_instance(get_admin_context(), deleted)
    assert route_instance(get_admin_context(read_deleted="yes"), deleted).host == "gone-host"
    assert route_instance(get_admin_context(read_deleted="only"), deleted).host == "gone-host"
    with pytest.raises(exception.InstanceNotFound):
        route_instance(get_admin_context(read_deleted="only"), alive)
    assert route_instance(get_admin_context(read_deleted="yes"), alive).host == "live-host"


def test_get_instance_on_the_local_cell(
    make_cells: MakeCells, make_instance: MakeInstance, conf: cfg.ConfigOpts
) -> None:
    (cell,) = make_cells(1)
    instance_uuid = make_instance(cell, host="local-host", display_name="vm-7")
    conf.set_override("connection", cell.database_connection, group="database")
    ctx = get_admin_context()  # untargeted: this service's own cell
    row = get_instance(ctx, instance_uuid)
    assert (row["host"], row["display_name"]) == ("local-host", "vm-7")
    assert set(get_instance(ctx, instance_uuid, columns=("uuid",)).keys()) == {"uuid"}
    with pytest.raises(exception.InstanceNotFound, match="local"):
        get_instance(ctx, str(uuidlib.uuid4()))
