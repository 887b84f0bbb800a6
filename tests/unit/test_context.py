"""RequestContext, target_cell and set_target_cell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from cellrouter import exception
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, get_admin_context, set_target_cell, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]


def db_path(engine: sa.Engine) -> str | None:
    return engine.url.database


def cell_path(cell: CellMapping) -> str | None:
    return sa.make_url(cell.database_connection).database


# -- RequestContext ------------------------------------------------------------------


def test_context_defaults_and_repr() -> None:
    ctx = RequestContext(user_id="u", project_id="p")
    assert ctx.is_admin is False
    assert ctx.read_deleted == "no"
    assert ctx.request_id.startswith("req-")
    assert ctx.cell_mapping is None
    assert ctx.cell_uuid is None
    assert RequestContext().request_id != ctx.request_id
    assert "project_id='p'" in repr(ctx)
    assert "cell=None" in repr(ctx)


def test_context_rejects_unknown_read_deleted() -> None:
    with pytest.raises(exception.InvalidValue, match="read_deleted"):
        RequestContext(read_deleted="maybe")
    with pytest.raises(exception.InvalidValue, match="read_deleted"):
        RequestContext().elevated(read_deleted="maybe")


def test_admin_context() -> None:
    ctx = get_admin_context(read_deleted="yes")
    assert ctx.is_admin is True
    assert ctx.user_id is None
    assert ctx.read_deleted == "yes"


def test_elevated_is_an_admin_copy() -> None:
    ctx = RequestContext(user_id="u", project_id="p", request_id="req-1")
    admin = ctx.elevated(read_deleted="only")
    assert (admin.is_admin, admin.read_deleted) == (True, "only")
    assert (admin.user_id, admin.project_id, admin.request_id) == ("u", "p", "req-1")
    assert (ctx.is_admin, ctx.read_deleted) == (False, "no")


def test_to_dict_from_dict_round_trip() -> None:
    ctx = RequestContext(
        user_id="u", project_id="p", is_admin=True, request_id="req-x", read_deleted="yes"
    )
    values = ctx.to_dict()
    assert values == {
        "user_id": "u",
        "project_id": "p",
        "is_admin": True,
        "request_id": "req-x",
        "read_deleted": "yes",
    }
    back = RequestContext.from_dict({**values, "unrelated": 1})
    assert back.to_dict() == values
    assert back.cell_mapping is None


# -- target_cell ---------------------------------------------------------------------


def test_target_cell_targets_a_copy_and_leaves_the_original_untouched(
    make_cells: MakeCells, conf: cfg.ConfigOpts, tmp_path: Path
) -> None:
    own = f"sqlite:///{tmp_path / 'own.db'}"
    conf.set_override("connection", own, group="database")
    c1, c2 = make_cells(2)
    ctx = RequestContext(user_id="u", project_id="p", request_id="req-1")
    with target_cell(ctx, c1) as cctx:
        assert cctx is not ctx
        assert cctx.cell_mapping == c1
        assert cctx.cell_uuid == c1.uuid
        assert db_path(cctx.engine) == cell_path(c1)
        assert (cctx.user_id, cctx.project_id, cctx.request_id) == ("u", "p", "req-1")
        # The original stays untargeted, inside the block too.
        assert ctx.cell_mapping is None
        assert db_path(ctx.engine) == str(tmp_path / "own.db")
        with target_cell(cctx, c2) as inner:
            assert db_path(inner.engine) == cell_path(c2)
            assert db_path(cctx.engine) == cell_path(c1)
        assert cctx.cell_uuid == c1.uuid
    assert ctx.cell_mapping is None
    assert ctx.cell_uuid is None
    assert db_path(ctx.engine) == str(tmp_path / "own.db")


def test_target_cell_gives_each_cell_its_own_engine_and_reuses_it(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    c1, c2, c3 = make_cells(3)
    engines = []
    for cell in (c1, c2, c3):
        with target_cell(admin_ctx, cell) as cctx:
            engines.append(cctx.engine)
    assert len({id(e) for e in engines}) == 3
    with target_cell(admin_ctx, c2) as cctx:
        assert cctx.engine is engines[1]
    # A record re-read from the API DB is the same cell: same pooled engine.
    with target_cell(admin_ctx, CellMapping.get_by_uuid(admin_ctx, c3.uuid)) as cctx:
        assert cctx.engine is engines[2]


def test_target_cell_reaches_the_cells_data(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    c1, c2 = make_cells(2)
    in_c1 = make_instance(c1, host="h1")
    in_c2 = make_instance(c2, host="h2")
    with target_cell(admin_ctx, c1) as cctx:
        assert get_instance(cctx, in_c1)["host"] == "h1"
        with pytest.raises(exception.InstanceNotFound):
            get_instance(cctx, in_c2)
    with target_cell(admin_ctx, c2) as cctx:
        assert get_instance(cctx, in_c2, columns=("host", "uuid"))["uuid"] == in_c2


def test_target_cell_exit_on_error_propagates(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    with pytest.raises(KeyError):
        with target_cell(admin_ctx, cell):
            raise KeyError("boom")
    assert admin_ctx.cell_mapping is None


def test_untargeted_context_without_local_database_is_a_clear_error(
    conf: cfg.ConfigOpts, admin_ctx: RequestContext
) -> None:
    with pytest.raises(exception.MissingConnection, match=r"\[database\]/connection"):
        admin_ctx.engine  # noqa: B018


def test_copy_shares_the_targeting(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    with target_cell(admin_ctx, cell) as cctx:
        copied = cctx.copy()
        assert copied.cell_mapping == cell
        assert copied.engine is cctx.engine
        elevated = RequestContext(user_id="u").copy()
        assert elevated.cell_mapping is None


# -- set_target_cell -----------------------------------------------------------------


def test_set_target_cell_targets_and_untargets_in_place(
    make_cells: MakeCells, conf: cfg.ConfigOpts, tmp_path: Path
) -> None:
    conf.set_override("connection", f"sqlite:///{tmp_path / 'own.db'}", group="database")
    c1, c2 = make_cells(2)
    ctx = RequestContext(user_id="u")
    set_target_cell(ctx, c1)
    assert ctx.cell_uuid == c1.uuid
    assert db_path(ctx.engine) == cell_path(c1)
    set_target_cell(ctx, c2)
    assert ctx.cell_uuid == c2.uuid
    assert db_path(ctx.engine) == cell_path(c2)
    set_target_cell(ctx, None)
    assert ctx.cell_mapping is None
    assert ctx.cell_uuid is None
    assert db_path(ctx.engine) == str(tmp_path / "own.db")


# -- transports ----------------------------------------------------------------------


def test_cell0_without_queue_has_no_transport(
    api_db: str, tmp_path: Path, admin_ctx: RequestContext
) -> None:
    cell0 = CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=f"sqlite:///{tmp_path / 'cell0.db'}",
        transport_url="none:///",
    )
    with target_cell(admin_ctx, cell0) as cctx:
        assert cctx.transport is None
        with pytest.raises(exception.CellRouterError, match="no message queue"):
            cctx.rpc_client("compute", server="h1")
    ctx = RequestContext()
    set_target_cell(ctx, cell0)
    assert ctx.transport is None


def test_transport_is_built_once_per_cell(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    c1, c2 = make_cells(2)
    with target_cell(admin_ctx, c1) as a, target_cell(admin_ctx, c1) as b:
        assert a.transport is not None
        assert a.transport is b.transport
    with target_cell(admin_ctx, c2) as other:
        assert other.transport is not a.transport
    assert registry.get(c1).transport is a.transport
