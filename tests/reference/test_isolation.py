"""Every request scoped to its project, behind keystonemiddleware's headers.

The embedded deployment with three cells and ``auth_strategy = keystone``;
three projects (alice's, bob's, carol's: one server) and an admin, all over
HTTP. Every cross-project read, delete, marker and filter attempt is refused
as Nova refuses it, and no database changes.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from reference_helpers import database_snapshot, reset_cellrouter, wait_for

import cellrouter
from cellrouter.reference.demo import Client
from cellrouter.reference.deployment import EmbeddedDeployment, Topology

A, B, C = "project-a", "project-b", "project-c"


@dataclasses.dataclass
class World:
    deployment: EmbeddedDeployment
    anonymous: Client
    admin: Client
    alice: Client
    bob: Client
    carol: Client
    ids: dict[str, list[str]]

    def urls(self) -> list[str]:
        topology = self.deployment.topology
        return [
            topology.api_database,
            topology.cell0_database,
            *(cell.database_connection for cell in topology.cells),
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("isolation")
    deployment = EmbeddedDeployment(Topology.sqlite(workdir, cells=3), workdir)
    try:
        deployment.start()
        base = Client(deployment.url)
        world = World(
            deployment,
            base,
            base.as_caller("admin-project", "admin-user", ["member", "Admin"]),
            base.as_caller(A, "alice", ["member", "reader"]),
            base.as_caller(B, "bob", ["member"]),
            base.as_caller(C, "carol"),
            {},
        )
        for client, project, count in ((world.alice, A, 9), (world.bob, B, 6), (world.carol, C, 1)):
            world.ids[project] = [
                client.expect(
                    202, "POST", "/servers", {"name": f"{project}-{i}", "flavor": "m1.tiny"}
                )["server"]["id"]
                for i in range(count)
            ]
        total = sum(len(ids) for ids in world.ids.values())

        def settled() -> bool:
            servers, _, _ = world.admin.list_all(limit=1000)
            return len(servers) == total and all(s["status"] == "ACTIVE" for s in servers)

        wait_for(settled)
        yield world
    finally:
        deployment.stop()
        reset_cellrouter()


def _ids(servers: list[dict[str, Any]]) -> set[str]:
    return {s["id"] for s in servers}


def _query(**params: Any) -> str:
    return "/servers?" + urllib.parse.urlencode(params, True)


def _same_except_id(got: Any, expected: Any, got_id: str, expected_id: str) -> bool:
    """Two error bodies that differ only in the uuid they name."""
    return str(got).replace(got_id, "<id>") == str(expected).replace(expected_id, "<id>")


# -- who is asking ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/servers"),
        ("GET", f"/servers/{uuid.uuid4()}"),
        ("DELETE", f"/servers/{uuid.uuid4()}"),
        ("POST", "/servers"),
        ("GET", "/cells"),
        ("GET", "/"),
    ],
)
def test_a_request_without_a_project_is_401(world: World, method: str, path: str) -> None:
    body = {"name": "anon", "flavor": "m1.tiny", "project": A} if method == "POST" else None
    before = database_snapshot(world.urls())
    status, answer = world.anonymous.request(method, path, body)
    assert status == 401 and answer["error"]["code"] == 401
    assert "X-Project-Id" in answer["error"]["message"]
    # a user id and roles are no project either
    status, _ = Client(
        world.anonymous.base, headers={"X-User-Id": "u", "X-Roles": "admin"}
    ).request(method, path, body)
    assert status == 401
    assert database_snapshot(world.urls()) == before


def test_an_invalid_token_is_401_even_with_a_project(world: World) -> None:
    headers = {"X-Project-Id": A, "X-Roles": "admin", "X-Identity-Status": "Invalid"}
    status, answer = Client(world.anonymous.base, headers=headers).request("GET", "/servers")
    assert status == 401 and "not valid" in answer["error"]["message"]


# -- lists -----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob", "carol"])
def test_a_project_lists_only_its_own_servers(world: World, who: str) -> None:
    client: Client = getattr(world, who)
    project = client.headers["X-Project-Id"]
    own = set(world.ids[project])
    servers, _, _ = client.list_all(limit=1000)
    assert _ids(servers) == own and {s["project_id"] for s in servers} == {project}
    # page by page through the cells: the filter is in every cell's query
    paged, pages, _ = client.list_all(limit=2, sort_key="display_name", sort_dir="asc")
    assert [s["id"] for s in paged] == [s["id"] for s in sorted(servers, key=lambda s: s["name"])]
    assert -(-len(own) // 2) <= pages <= len(own) // 2 + 1  # a full last page may have a marker
    # another project's filter is ignored, as Nova ignores it: still its own
    for other in {A, B, C} - {project}:
        listed, _, _ = client.list_all(limit=1000, project_id=other)
        assert _ids(listed) == own
    assert _ids(client.list_all(limit=1000, all_tenants="false")[0]) == own


@pytest.mark.parametrize("value", ["true", "1", "", "yes"])
def test_all_tenants_needs_the_admin_role(world: World, value: str) -> None:
    status, answer = world.alice.request("GET", _query(all_tenants=value))
    assert status == 403 and "admin role" in answer["error"]["message"]
    everything = set().union(*world.ids.values())
    assert _ids(world.admin.list_all(limit=1000, all_tenants=value)[0]) == everything


def test_admin_sees_every_project_and_filters_by_project(world: World) -> None:
    everything = set().union(*world.ids.values())
    assert _ids(world.admin.list_all(limit=1000)[0]) == everything
    for project, ids in world.ids.items():
        assert _ids(world.admin.list_all(limit=1000, project_id=project)[0]) == set(ids)
    # all_tenants=false: the admin's own project (which has none)
    assert world.admin.list_all(limit=1000, all_tenants="false")[0] == []
    # an admin may page with any marker and read or delete any server
    marker = world.ids[B][0]
    world.admin.expect(200, "GET", _query(project_id=A, marker=marker))
    shown = world.admin.expect(200, "GET", f"/servers/{world.ids[C][0]}")["server"]
    assert shown["project_id"] == C


# -- another project's servers ---------------------------------------------------


def test_every_cross_project_attempt_is_refused_and_nothing_is_written(world: World) -> None:
    alice, bob = world.alice, world.bob
    before = database_snapshot(world.urls())
    missing = str(uuid.uuid4())
    for method in ("GET", "DELETE"):
        unknown = alice.request(method, f"/servers/{missing}")
        assert unknown[0] == 404
        for server_id in world.ids[B] + world.ids[C]:
            got = alice.request(method, f"/servers/{server_id}")
            assert got[0] == 404 and _same_except_id(got, unknown, server_id, missing), got
        for server_id in world.ids[A]:
            assert bob.request(method, f"/servers/{server_id}")[0] == 404
    # a marker of another project's server: the unknown marker's 400
    unknown = alice.request("GET", _query(marker=missing))
    assert unknown[0] == 400
    for server_id in world.ids[B] + world.ids[C]:
        for query in (_query(marker=server_id), _query(marker=server_id, project_id=B)):
            got = alice.request("GET", query)
            assert got[0] == 400 and _same_except_id(got, unknown, server_id, missing), got
    # filters reach nothing beyond the caller's project
    assert _ids(alice.list_all(limit=1000, project_id=B)[0]) == set(world.ids[A])
    assert alice.request("GET", _query(all_tenants="true"))[0] == 403
    # no boot into another project, no operator pages
    status, answer = alice.request(
        "POST", "/servers", {"name": "x", "flavor": "m1.tiny", "project": B}
    )
    assert status == 403 and "admin role" in answer["error"]["message"]
    for path in ("/cells", "/"):
        status, answer = alice.request("GET", path)
        assert status == 403 and answer["error"]["code"] == 403
    assert database_snapshot(world.urls()) == before
    # and the owners still have every server, untouched
    assert _ids(bob.list_all(limit=1000)[0]) == set(world.ids[B])
    for server_id in world.ids[C]:
        assert (
            world.carol.expect(200, "GET", f"/servers/{server_id}")["server"]["status"] == "ACTIVE"
        )


def test_a_project_reads_and_deletes_its_own(world: World) -> None:
    server_id = world.alice.expect(
        202, "POST", "/servers", {"name": "own", "flavor": "m1.tiny", "project": A}
    )["server"]["id"]
    wait_for(
        lambda: (
            world.alice.expect(200, "GET", f"/servers/{server_id}")["server"]["status"] == "ACTIVE"
        )
    )
    assert world.bob.request("GET", f"/servers/{server_id}")[0] == 404
    world.alice.expect(204, "DELETE", f"/servers/{server_id}")
    world.alice.expect(404, "GET", f"/servers/{server_id}")
    wait_for(lambda: server_id not in _ids(world.admin.list_all(limit=1000)[0]))


def test_cells_and_status_page_need_the_admin_role(world: World) -> None:
    for client in (world.alice, world.bob, world.carol):
        for path in ("/cells", "/"):
            status, answer = client.request("GET", path)
            assert status == 403 and "admin role" in answer["error"]["message"]
    cells = world.admin.expect(200, "GET", "/cells")["cells"]
    assert len(cells) == 4
    status, page = world.admin.request("GET", "/")
    assert status == 200 and "<h1>Cells</h1>" in page


# -- per-project cells -------------------------------------------------------------


def test_a_project_list_asks_only_the_cells_holding_its_servers(world: World) -> None:
    """carol's one server is in one cell: her list must not touch the others,
    so with both other cells unreachable it is complete, not partial."""
    ctx = cellrouter.get_admin_context()
    (carols,) = world.ids[C]
    home = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, carols).cell_mapping
    assert home is not None
    assert [cell.uuid for cell in cellrouter.CellMapping.get_by_project(ctx, C)] == [home.uuid]
    victims = [
        cell
        for name, cell in world.deployment.cells.items()
        if name != "cell0" and cell.uuid != home.uuid
    ]
    assert len(victims) == 2
    gone = world.deployment.workdir / "gone"
    for cell in victims:
        cellrouter.command.update_cell(
            cell.uuid, database_connection=f"sqlite:///{gone / (cell.name or 'x')}.db"
        )
    try:
        page = world.carol.expect(200, "GET", "/servers?limit=1000")
        assert page["partial"] is False and page["unavailable_cells"] == []
        assert _ids(page["servers"]) == {carols}
        health = cellrouter.cell_health()
        for cell in victims:  # never asked: no failure recorded
            state = health.get(cell.uuid)
            assert state is None or state.consecutive_failures == 0, state
        # the admin's list of every project does ask them: partial
        every = world.admin.expect(200, "GET", "/servers?limit=1000")
        assert every["partial"] is True
        assert {c["uuid"] for c in every["unavailable_cells"]} == {c.uuid for c in victims}
        # alice's servers are spread over the cells: her list is partial too
        assert world.alice.expect(200, "GET", "/servers?limit=1000")["partial"] is (
            any(
                cellrouter.InstanceMapping.get_by_instance_uuid(ctx, i).cell_uuid
                in {c.uuid for c in victims}
                for i in world.ids[A]
            )
        )
    finally:
        for cell in victims:
            cellrouter.command.update_cell(cell.uuid, database_connection=cell.database_connection)
    assert world.admin.expect(200, "GET", "/servers?limit=1000")["partial"] is False
