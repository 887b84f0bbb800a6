"""CellMapping, InstanceMapping, HostMapping and BuildRequest on every backend.

Every test asking for ``api_db`` or ``make_cells`` runs once per backend of
``tests/backends.py`` (SQLite, MariaDB, PostgreSQL).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from cellrouter import exception
from cellrouter.cells.context import RequestContext
from cellrouter.db.api_schema import cell_mappings
from cellrouter.index import events
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping

MakeCells = Callable[..., list[CellMapping]]


def new_uuid() -> str:
    return str(uuidlib.uuid4())


@pytest.fixture
def changes() -> Iterator[list[tuple[str, tuple[str, ...]]]]:
    """Every mapping_changed notification during the test."""
    seen: list[tuple[str, tuple[str, ...]]] = []

    def listener(kind: str, keys: tuple[str, ...]) -> None:
        seen.append((kind, keys))

    events.subscribe(listener)  # type: ignore[arg-type]
    try:
        yield seen
    finally:
        events.unsubscribe(listener)  # type: ignore[arg-type]


# -- CellMapping ---------------------------------------------------------------------


def test_cell_create_and_get_by_uuid(
    api_db: str, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    cell = CellMapping.create(
        admin_ctx,
        name="cell1",
        database_connection="sqlite:////tmp/cell1.db",
        transport_url="fake://cell1/",
    )
    assert isinstance(cell.id, int)
    assert uuidlib.UUID(cell.uuid)
    assert cell.created_at is not None
    assert ("cell", (cell.uuid,)) in changes

    got = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    assert got.id == cell.id
    assert got.name == "cell1"
    assert got.database_connection == "sqlite:////tmp/cell1.db"
    assert got.transport_url == "fake://cell1/"
    assert got.database_connection_template == "sqlite:////tmp/cell1.db"
    assert got.disabled is False
    assert not got.is_cell0()
    assert got.identity == f"cell1({cell.uuid})"


def test_cell_create_with_given_uuid_and_cell0(api_db: str, admin_ctx: RequestContext) -> None:
    cell0 = CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name=None,
        database_connection="sqlite:////tmp/cell0.db",
        transport_url="none:///",
    )
    assert cell0.is_cell0()
    assert CellMapping.get_by_uuid(admin_ctx, CELL0_UUID).is_cell0()
    assert cell0.identity == CELL0_UUID  # unnamed: identity is the uuid


def test_cell_get_by_uuid_not_found(api_db: str, admin_ctx: RequestContext) -> None:
    missing = new_uuid()
    with pytest.raises(exception.CellMappingNotFound, match=missing):
        CellMapping.get_by_uuid(admin_ctx, missing)


def test_cell_create_duplicate_uuid(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    with pytest.raises(exception.CellMappingExists, match=cell.uuid):
        CellMapping.create(
            admin_ctx,
            uuid=cell.uuid,
            database_connection="sqlite:////tmp/other.db",
            transport_url="fake://other/",
        )
    assert len(CellMapping.get_all(admin_ctx)) == 1


@pytest.mark.parametrize(
    ("database_connection", "transport_url"),
    [
        ("nosuchdialect://u:p@h/db", "fake://x/"),
        ("not a url", "fake://x/"),
        ("sqlite://", "no-scheme"),
        ("sqlite://", "://nohost"),
    ],
)
def test_cell_create_invalid_url(
    api_db: str, admin_ctx: RequestContext, database_connection: str, transport_url: str
) -> None:
    with pytest.raises(exception.InvalidURL):
        CellMapping.create(
            admin_ctx, database_connection=database_connection, transport_url=transport_url
        )
    assert CellMapping.get_all(admin_ctx) == []


def test_cell_get_all_in_creation_order_and_by_disabled(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    enabled = make_cells(2)
    disabled = make_cells(1, disabled=True)
    more = make_cells(1)
    assert [c.uuid for c in CellMapping.get_all(admin_ctx)] == [
        c.uuid for c in enabled + disabled + more
    ]
    assert [c.uuid for c in CellMapping.get_by_disabled(admin_ctx, True)] == [disabled[0].uuid]
    assert [c.uuid for c in CellMapping.get_by_disabled(admin_ctx, False)] == [
        c.uuid for c in enabled + more
    ]


def test_cell_get_by_project(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    c1, c2, c3 = make_cells(3)
    for cell, project in ((c1, "p1"), (c3, "p1"), (c3, "p1"), (c2, "p2")):
        InstanceMapping.create(
            admin_ctx, instance_uuid=new_uuid(), project_id=project, cell_mapping=cell
        )
    # A building instance (no cell) does not put the project in any cell.
    InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="p3")
    assert [c.uuid for c in CellMapping.get_by_project(admin_ctx, "p1")] == [c1.uuid, c3.uuid]
    assert [c.uuid for c in CellMapping.get_by_project(admin_ctx, "p2")] == [c2.uuid]
    assert CellMapping.get_by_project(admin_ctx, "p3") == []


def test_cell_get_by_urls_matches_stored_and_formatted(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    conf.set_override("connection", "mysql+pymysql://nova:pw@db0/nova", group="database")
    templated = CellMapping.create(
        admin_ctx,
        name="tpl",
        database_connection="mysql+pymysql://{username}:{password}@db7/{path}_cell7",
        transport_url="rabbit://u:p@mq7/",
    )
    plain = CellMapping.create(
        admin_ctx, name="plain", database_connection="sqlite:///x.db", transport_url="fake://p/"
    )
    cell0 = CellMapping.create(
        admin_ctx, name="cell0", database_connection="sqlite:///c0.db", transport_url="none:///"
    )

    def names(**kw: str) -> list[str | None]:
        return [c.name for c in CellMapping.get_by_urls(admin_ctx, **kw)]

    assert names(database_connection="mysql+pymysql://nova:pw@db7/nova_cell7") == ["tpl"]
    assert names(database_connection=templated.database_connection_template) == ["tpl"]
    assert names(database_connection="sqlite:///x.db") == ["plain"]
    assert names(transport_url="fake://p/") == ["plain"]
    assert names(transport_url="rabbit://u:p@mq7/") == ["tpl"]
    assert names(database_connection="sqlite:///nope.db", transport_url="fake://nope/") == []
    # cell0's "no queue" URL is shared by design, never a match.
    assert names(transport_url="none:///") == []
    assert plain.uuid != cell0.uuid


def test_cell_template_is_stored_as_given_and_formatted_on_read(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    conf.set_override("connection", "mysql+pymysql://nova:pw@db0/nova", group="database")
    conf.set_override("transport_url", "rabbit://mq:mqpw@mq0:5672/")
    cell = CellMapping.create(
        admin_ctx,
        database_connection="{scheme}://{username}:{password}@db7/{path}_cell7",
        transport_url="rabbit://{username}:{password}@mq7:{port}/",
    )
    assert cell.database_connection == "mysql+pymysql://nova:pw@db7/nova_cell7"
    assert cell.transport_url == "rabbit://mq:mqpw@mq7:5672/"
    with sa.create_engine(api_db).connect() as conn:
        stored = conn.execute(
            sa.select(cell_mappings.c.database_connection, cell_mappings.c.transport_url)
        ).one()
    assert tuple(stored) == (
        "{scheme}://{username}:{password}@db7/{path}_cell7",
        "rabbit://{username}:{password}@mq7:{port}/",
    )
    # The same stored row formats differently under another configuration.
    conf.set_override("connection", "mysql+pymysql://other:pw2@db0/api", group="database")
    reread = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    assert reread.database_connection == "mysql+pymysql://other:pw2@db7/api_cell7"


def test_cell_update_changes_only_given_fields(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    cell, other = make_cells(2)
    renamed = cell.update(admin_ctx, name="renamed")
    assert renamed.name == "renamed"
    assert renamed.database_connection == cell.database_connection
    assert renamed.transport_url == cell.transport_url
    assert renamed.disabled is False
    assert renamed.updated_at is not None
    assert ("cell", (cell.uuid,)) in changes

    disabled = renamed.update(admin_ctx, disabled=True, transport_url="fake://moved/")
    reread = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    assert reread == disabled
    assert (reread.name, reread.disabled, reread.transport_url) == (
        "renamed",
        True,
        "fake://moved/",
    )
    # The other cell is untouched.
    assert CellMapping.get_by_uuid(admin_ctx, other.uuid).name == other.name
    # Clearing the name is a change too (None is a value, not "not given").
    assert disabled.update(admin_ctx, name=None).name is None


def test_cell_update_without_changes_writes_nothing(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    (cell,) = make_cells(1)
    changes.clear()
    assert cell.update(admin_ctx) is cell
    assert changes == []


def test_cell_update_keeps_templates(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    conf.set_override("connection", "mysql+pymysql://nova:pw@db0/nova", group="database")
    cell = CellMapping.create(
        admin_ctx,
        database_connection="mysql+pymysql://{username}:{password}@db7/{path}",
        transport_url="fake://x/",
    )
    updated = cell.update(admin_ctx, name="n")
    assert updated.database_connection_template == (
        "mysql+pymysql://{username}:{password}@db7/{path}"
    )


def test_cell_update_invalid_url_changes_nothing(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    with pytest.raises(exception.InvalidURL):
        cell.update(admin_ctx, database_connection="nosuchdialect://x/y", name="never")
    assert CellMapping.get_by_uuid(admin_ctx, cell.uuid) == cell


def test_cell_update_and_destroy_of_missing_cell(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    cell.destroy(admin_ctx)
    with pytest.raises(exception.CellMappingNotFound):
        CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    with pytest.raises(exception.CellMappingNotFound):
        cell.update(admin_ctx, name="ghost")
    with pytest.raises(exception.CellMappingNotFound):
        cell.destroy(admin_ctx)


def test_cell_destroy_notifies(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    (cell,) = make_cells(1)
    changes.clear()
    cell.destroy(admin_ctx)
    assert changes == [("cell", (cell.uuid,))]


def test_cell_destroy_with_hosts_is_refused(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)
    with pytest.raises(exception.CellHasHosts, match=cell.uuid):
        cell.destroy(admin_ctx)
    assert CellMapping.get_by_uuid(admin_ctx, cell.uuid) == cell


def test_cell_destroy_with_instances_is_refused(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="p", cell_mapping=cell)
    with pytest.raises(exception.CellRouterError):
        cell.destroy(admin_ctx)
    assert CellMapping.get_by_uuid(admin_ctx, cell.uuid) == cell


def test_cell_destroy_with_instances_says_instances(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="p", cell_mapping=cell)
    with pytest.raises(exception.CellHasInstances):
        cell.destroy(admin_ctx)


# -- InstanceMapping -----------------------------------------------------------------


def test_instance_mapping_create_and_get(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    (cell,) = make_cells(1)
    iuuid = new_uuid()
    created = InstanceMapping.create(
        admin_ctx, instance_uuid=iuuid, project_id="p1", user_id="u1", cell_mapping=cell
    )
    assert ("instance", (iuuid,)) in changes
    got = InstanceMapping.get_by_instance_uuid(admin_ctx, iuuid)
    assert got.id == created.id
    assert (got.instance_uuid, got.project_id, got.user_id) == (iuuid, "p1", "u1")
    assert got.queued_for_delete is False
    assert got.cell_uuid == cell.uuid
    # The joined cell is a full record, formatted like CellMapping.get_by_uuid's.
    assert got.cell_mapping == CellMapping.get_by_uuid(admin_ctx, cell.uuid)


def test_instance_mapping_without_cell(api_db: str, admin_ctx: RequestContext) -> None:
    iuuid = new_uuid()
    created = InstanceMapping.create(admin_ctx, instance_uuid=iuuid, project_id="p1")
    assert created.cell_mapping is None
    got = InstanceMapping.get_by_instance_uuid(admin_ctx, iuuid)
    assert got.cell_mapping is None
    assert got.cell_uuid is None


def test_instance_mapping_not_found(api_db: str, admin_ctx: RequestContext) -> None:
    missing = new_uuid()
    with pytest.raises(exception.InstanceMappingNotFound, match=missing):
        InstanceMapping.get_by_instance_uuid(admin_ctx, missing)


def test_instance_mapping_duplicate(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    c1, c2 = make_cells(2)
    iuuid = new_uuid()
    InstanceMapping.create(admin_ctx, instance_uuid=iuuid, project_id="p", cell_mapping=c1)
    with pytest.raises(exception.InstanceMappingExists, match=iuuid):
        InstanceMapping.create(admin_ctx, instance_uuid=iuuid, project_id="p", cell_mapping=c2)
    assert InstanceMapping.get_by_instance_uuid(admin_ctx, iuuid).cell_uuid == c1.uuid


def test_instance_mapping_create_in_deleted_cell(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    cell.destroy(admin_ctx)
    with pytest.raises(exception.CellMappingNotFound):
        InstanceMapping.create(
            admin_ctx, instance_uuid=new_uuid(), project_id="p", cell_mapping=cell
        )


def test_instance_mapping_get_by_instance_uuids_chunks_dedups_and_skips_missing(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    c1, c2 = make_cells(2)
    uuids = [new_uuid() for _ in range(1203)]  # > 2 chunks of 500
    for index, iuuid in enumerate(uuids):
        InstanceMapping.create(
            admin_ctx,
            instance_uuid=iuuid,
            project_id="p",
            cell_mapping=(c1, c2, None)[index % 3],
        )
    asked = [*uuids, uuids[0], uuids[700], new_uuid()]
    found = InstanceMapping.get_by_instance_uuids(admin_ctx, asked)
    assert sorted(m.instance_uuid for m in found) == sorted(uuids)
    by_uuid = {m.instance_uuid: m for m in found}
    assert by_uuid[uuids[0]].cell_uuid == c1.uuid
    assert by_uuid[uuids[1]].cell_uuid == c2.uuid
    assert by_uuid[uuids[2]].cell_mapping is None
    assert InstanceMapping.get_by_instance_uuids(admin_ctx, []) == []


def test_instance_mapping_get_by_cell_pages_and_count(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    c1, c2 = make_cells(2)
    in_c1 = []
    for index in range(7):
        cell = c1 if index % 2 == 0 else c2
        m = InstanceMapping.create(
            admin_ctx, instance_uuid=new_uuid(), project_id="p", cell_mapping=cell
        )
        if cell is c1:
            in_c1.append(m.instance_uuid)
    all_c1 = InstanceMapping.get_by_cell(admin_ctx, c1.uuid)
    assert [m.instance_uuid for m in all_c1] == in_c1
    first = InstanceMapping.get_by_cell(admin_ctx, c1.uuid, limit=3)
    rest = InstanceMapping.get_by_cell(admin_ctx, c1.uuid, limit=3, after_id=first[-1].id)
    assert [m.instance_uuid for m in first + rest] == in_c1
    assert len(rest) == 1
    assert InstanceMapping.count_by_cell(admin_ctx, c1.uuid) == 4
    assert InstanceMapping.count_by_cell(admin_ctx, c2.uuid) == 3
    assert InstanceMapping.count_by_cell(admin_ctx, new_uuid()) == 0


def test_instance_mapping_get_by_project(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    mine = [
        InstanceMapping.create(
            admin_ctx, instance_uuid=new_uuid(), project_id="mine", cell_mapping=cell
        ).instance_uuid
        for _ in range(3)
    ]
    InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="theirs")
    mine.append(
        InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="mine").instance_uuid
    )
    assert [m.instance_uuid for m in InstanceMapping.get_by_project(admin_ctx, "mine")] == mine


def test_instance_mapping_set_cell_and_queued_for_delete(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    (cell,) = make_cells(1)
    iuuid = new_uuid()
    building = InstanceMapping.create(admin_ctx, instance_uuid=iuuid, project_id="p")
    changes.clear()
    placed = building.set_cell(admin_ctx, cell)
    assert placed.cell_uuid == cell.uuid
    assert building.cell_mapping is None  # records are immutable
    assert changes == [("instance", (iuuid,))]
    reread = InstanceMapping.get_by_instance_uuid(admin_ctx, iuuid)
    assert reread.cell_uuid == cell.uuid
    assert reread.updated_at is not None

    queued = reread.set_queued_for_delete(admin_ctx)
    assert queued.queued_for_delete is True
    assert InstanceMapping.get_by_instance_uuid(admin_ctx, iuuid).queued_for_delete is True
    queued.set_queued_for_delete(admin_ctx, False)
    assert InstanceMapping.get_by_instance_uuid(admin_ctx, iuuid).queued_for_delete is False


def test_instance_mapping_destroy(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    (cell,) = make_cells(1)
    keep, gone = (
        InstanceMapping.create(
            admin_ctx, instance_uuid=new_uuid(), project_id="p", cell_mapping=cell
        )
        for _ in range(2)
    )
    changes.clear()
    gone.destroy(admin_ctx)
    assert changes == [("instance", (gone.instance_uuid,))]
    with pytest.raises(exception.InstanceMappingNotFound):
        InstanceMapping.get_by_instance_uuid(admin_ctx, gone.instance_uuid)
    assert InstanceMapping.get_by_instance_uuid(admin_ctx, keep.instance_uuid) == keep
    with pytest.raises(exception.InstanceMappingNotFound):
        gone.destroy(admin_ctx)
    with pytest.raises(exception.InstanceMappingNotFound):
        gone.set_cell(admin_ctx, cell)
    with pytest.raises(exception.InstanceMappingNotFound):
        gone.set_queued_for_delete(admin_ctx)


def test_instance_mapping_destroy_many(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    uuids = [
        InstanceMapping.create(
            admin_ctx, instance_uuid=new_uuid(), project_id="p", cell_mapping=cell
        ).instance_uuid
        for _ in range(5)
    ]
    assert InstanceMapping.destroy_many(admin_ctx, [*uuids[:3], uuids[0], new_uuid()]) == 3
    assert InstanceMapping.count_by_cell(admin_ctx, cell.uuid) == 2
    assert InstanceMapping.destroy_many(admin_ctx, uuids[:3]) == 0


# -- HostMapping ---------------------------------------------------------------------


def test_host_mapping_create_get_and_list(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    c1, c2 = make_cells(2)
    created = HostMapping.create(admin_ctx, host="compute-b", cell_mapping=c1)
    assert ("host", ("compute-b",)) in changes
    HostMapping.create(admin_ctx, host="compute-a", cell_mapping=c2)
    HostMapping.create(admin_ctx, host="compute-c", cell_mapping=c1)

    got = HostMapping.get_by_host(admin_ctx, "compute-b")
    assert got.id == created.id
    assert got.cell_mapping == CellMapping.get_by_uuid(admin_ctx, c1.uuid)
    assert [h.host for h in HostMapping.get_all(admin_ctx)] == [
        "compute-a",
        "compute-b",
        "compute-c",
    ]
    assert [h.host for h in HostMapping.get_by_cell(admin_ctx, c1.uuid)] == [
        "compute-b",
        "compute-c",
    ]
    assert HostMapping.get_by_cell(admin_ctx, new_uuid()) == []


def test_host_mapping_not_found(api_db: str, admin_ctx: RequestContext) -> None:
    with pytest.raises(exception.HostMappingNotFound, match="nowhere"):
        HostMapping.get_by_host(admin_ctx, "nowhere")


def test_host_mapping_duplicate_names_the_existing_cell(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    c1, c2 = make_cells(2)
    HostMapping.create(admin_ctx, host="compute-1", cell_mapping=c1)
    with pytest.raises(exception.HostMappingExists) as err:
        HostMapping.create(admin_ctx, host="compute-1", cell_mapping=c2)
    assert err.value.kwargs["cell"] == c1.identity
    assert HostMapping.get_by_host(admin_ctx, "compute-1").cell_mapping.uuid == c1.uuid


def test_host_mapping_in_deleted_cell(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    cell.destroy(admin_ctx)
    with pytest.raises(exception.CellMappingNotFound, match=cell.uuid):
        HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)


def test_host_mapping_destroy(
    make_cells: MakeCells, admin_ctx: RequestContext, changes: list[tuple[str, tuple[str, ...]]]
) -> None:
    (cell,) = make_cells(1)
    host = HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)
    changes.clear()
    host.destroy(admin_ctx)
    assert changes == [("host", ("compute-1",))]
    with pytest.raises(exception.HostMappingNotFound):
        HostMapping.get_by_host(admin_ctx, "compute-1")
    with pytest.raises(exception.HostMappingNotFound):
        host.destroy(admin_ctx)
    cell.destroy(admin_ctx)  # no hosts left: the cell can go


# -- BuildRequest --------------------------------------------------------------------


def test_build_request_create_get_list_destroy(api_db: str, admin_ctx: RequestContext) -> None:
    first = BuildRequest.create(
        admin_ctx,
        instance_uuid=new_uuid(),
        project_id="p1",
        instance='{"name": "vm1"}',
        block_device_mappings="[]",
        tags="a,b",
    )
    second = BuildRequest.create(admin_ctx, instance_uuid=new_uuid(), project_id="p2")
    third = BuildRequest.create(admin_ctx, instance_uuid=new_uuid(), project_id="p1")

    got = BuildRequest.get_by_instance_uuid(admin_ctx, first.instance_uuid)
    assert got == first
    assert (got.instance, got.block_device_mappings, got.tags) == ('{"name": "vm1"}', "[]", "a,b")
    assert [b.instance_uuid for b in BuildRequest.get_all(admin_ctx)] == [
        first.instance_uuid,
        second.instance_uuid,
        third.instance_uuid,
    ]
    assert [b.instance_uuid for b in BuildRequest.get_all(admin_ctx, project_id="p1")] == [
        first.instance_uuid,
        third.instance_uuid,
    ]

    first.destroy(admin_ctx)
    with pytest.raises(exception.BuildRequestNotFound, match=first.instance_uuid):
        BuildRequest.get_by_instance_uuid(admin_ctx, first.instance_uuid)
    with pytest.raises(exception.BuildRequestNotFound):
        first.destroy(admin_ctx)
    assert [b.instance_uuid for b in BuildRequest.get_all(admin_ctx)] == [
        second.instance_uuid,
        third.instance_uuid,
    ]


def test_build_request_not_found(api_db: str, admin_ctx: RequestContext) -> None:
    missing = new_uuid()
    with pytest.raises(exception.BuildRequestNotFound, match=missing):
        BuildRequest.get_by_instance_uuid(admin_ctx, missing)


def test_build_request_duplicate_is_refused(api_db: str, admin_ctx: RequestContext) -> None:
    iuuid = new_uuid()
    first = BuildRequest.create(admin_ctx, instance_uuid=iuuid, project_id="p", instance="one")
    with pytest.raises(exception.BuildRequestExists, match=iuuid):
        BuildRequest.create(admin_ctx, instance_uuid=iuuid, project_id="p", instance="two")
    assert BuildRequest.get_all(admin_ctx) == [first]


def test_build_request_duplicate_is_a_cellrouter_error(
    api_db: str, admin_ctx: RequestContext
) -> None:
    iuuid = new_uuid()
    BuildRequest.create(admin_ctx, instance_uuid=iuuid, project_id="p")
    with pytest.raises(exception.CellRouterError):
        BuildRequest.create(admin_ctx, instance_uuid=iuuid, project_id="p")


# SQLite only: it checks where the SQLite files of the unit fixtures live.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_cell_paths_are_per_test(make_cells: MakeCells, tmp_path: Path) -> None:
    cells = make_cells(2)
    assert [c.database_connection for c in cells] == [
        f"sqlite:///{tmp_path / 'cell1.db'}",
        f"sqlite:///{tmp_path / 'cell2.db'}",
    ]
    assert [c.transport_url for c in cells] == ["fake://cell1/", "fake://cell2/"]


# -- bad input gets a cellrouter error, never a raw database one ----------------------


def test_set_cell_to_a_deleted_cell(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    home, gone = make_cells(2)
    mapping = InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="p")
    gone.destroy(admin_ctx)
    with pytest.raises(exception.CellMappingNotFound, match=gone.uuid):
        mapping.set_cell(admin_ctx, gone)
    assert mapping.set_cell(admin_ctx, home).cell_uuid == home.uuid


@pytest.mark.parametrize("missing", ["instance_uuid", "project_id"])
def test_required_values_are_checked_before_writing(
    api_db: str, admin_ctx: RequestContext, missing: str
) -> None:
    values = {"instance_uuid": new_uuid(), "project_id": "p", missing: None}
    with pytest.raises(exception.InvalidValue, match=missing):
        InstanceMapping.create(admin_ctx, **values)  # type: ignore[arg-type]
    with pytest.raises(exception.InvalidValue, match=missing):
        BuildRequest.create(admin_ctx, **values)  # type: ignore[arg-type]
    assert InstanceMapping.get_by_project(admin_ctx, "p") == []


def test_cell_name_longer_than_the_column(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    with pytest.raises(exception.InvalidValue, match="255"):
        CellMapping.create(
            admin_ctx, name="x" * 256, database_connection="sqlite://", transport_url="fake://"
        )
    with pytest.raises(exception.InvalidValue, match="255"):
        cell.update(admin_ctx, name="y" * 300)
    assert CellMapping.get_by_uuid(admin_ctx, cell.uuid).name == cell.name


def test_update_checks_only_the_urls_it_changes(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    conf.set_override("connection", "mysql+pymysql://nova:pw@db1/nova", group="database")
    cell = CellMapping.create(
        admin_ctx,
        database_connection="mysql+pymysql://{username}:{password}@db7/{path}",
        transport_url="fake://t/",
    )
    # An API-only host (no [database]/connection) can still rename or disable it ...
    conf.clear_override("connection", group="database")
    cell = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    cell = cell.update(admin_ctx, name="renamed", disabled=True)
    assert (cell.name, cell.disabled) == ("renamed", True)
    assert cell.database_connection_template.startswith("mysql+pymysql://{username}")
    # ... but not give it a template it cannot fill.
    with pytest.raises(exception.InvalidURL, match="no configured"):
        cell.update(admin_ctx, database_connection="mysql+pymysql://{username}@db8/{path}")


def test_unknown_instance_columns(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    from cellrouter.cells.context import target_cell
    from cellrouter.cells.instance import get_instance

    (cell,) = make_cells(1)
    with target_cell(admin_ctx, cell) as cctx:
        with pytest.raises(exception.InvalidValue, match="nope"):
            get_instance(cctx, new_uuid(), columns=["host", "nope"])
