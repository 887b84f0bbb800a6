"""The reference API over HTTP (embedded deployment: SQLite, fake://, one process)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest
from reference_helpers import rows_everywhere, wait_for

import cellrouter
from cellrouter import exception
from cellrouter.reference.api import MAX_LIMIT, status_for
from cellrouter.reference.demo import Client
from cellrouter.reference.deployment import EmbeddedDeployment


def boot(client: Client, name: str, flavor: str = "m1.tiny", project: str = "p1") -> str:
    body = {"name": name, "flavor": flavor, "project": project}
    return str(client.expect(202, "POST", "/servers", body)["server"]["id"])


def settled(client: Client, server_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        server = client.expect(200, "GET", f"/servers/{server_id}")["server"]
        return server if server["status"] not in ("BUILD",) else None

    return wait_for(done)  # type: ignore[no-any-return]


def raw(client: Client, method: str, path: str, data: bytes, ctype: str) -> tuple[int, Any]:
    req = urllib.request.Request(
        client.base + path, data=data, method=method, headers={"Content-Type": ctype}
    )
    try:
        with urllib.request.urlopen(req) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_boot_lands_in_one_cell_with_its_mapping(client: Client) -> None:
    server_id = boot(client, "one")
    server = settled(client, server_id)
    assert server["status"] == "ACTIVE" and server["host"].startswith(server["cell"]["name"])
    rows = rows_everywhere(server_id)
    assert list(rows) == [server["cell"]["name"]]
    ctx = cellrouter.get_admin_context()
    mapping = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, server_id)
    assert mapping.cell_mapping is not None and mapping.cell_mapping.name == server["cell"]["name"]
    with pytest.raises(exception.BuildRequestNotFound):
        cellrouter.BuildRequest.get_by_instance_uuid(ctx, server_id)


def test_no_host_buries_in_cell0_with_a_fault(client: Client) -> None:
    server = settled(client, boot(client, "huge", flavor="m1.huge"))
    assert server["status"] == "ERROR" and server["host"] is None
    assert server["cell"]["uuid"] == cellrouter.CELL0_UUID
    assert "No valid host" in server["fault"]["message"]


def test_a_failing_build_records_a_fault_in_its_cell(client: Client) -> None:
    server = settled(client, boot(client, "broken", flavor="m1.broken"))
    assert server["status"] == "ERROR" and server["host"] is not None
    assert server["cell"]["uuid"] != cellrouter.CELL0_UUID
    assert "fails on purpose" in server["fault"]["message"]


def test_show_of_a_building_server_answers_from_its_build_request(client: Client) -> None:
    ctx = cellrouter.get_admin_context()
    server_id = str(uuid.uuid4())
    spec = {"display_name": "queued", "flavor": {"name": "m1.tiny"}, "user_id": None}
    cellrouter.BuildRequest.create(
        ctx, instance_uuid=server_id, project_id="p9", instance=json.dumps(spec)
    )
    cellrouter.InstanceMapping.create(ctx, instance_uuid=server_id, project_id="p9")
    server = client.expect(200, "GET", f"/servers/{server_id}")["server"]
    assert server["status"] == "BUILD" and server["name"] == "queued" and server["cell"] is None
    # deleting it while it is queued: build request and mapping go, then 404
    client.expect(204, "DELETE", f"/servers/{server_id}")
    client.expect(404, "GET", f"/servers/{server_id}")
    with pytest.raises(exception.InstanceMappingNotFound):
        cellrouter.InstanceMapping.get_by_instance_uuid(ctx, server_id)


def test_delete_goes_to_the_host_then_404(client: Client) -> None:
    server_id = boot(client, "doomed")
    settled(client, server_id)
    client.expect(204, "DELETE", f"/servers/{server_id}")
    client.expect(404, "GET", f"/servers/{server_id}")
    client.expect(404, "DELETE", f"/servers/{server_id}")
    wait_for(lambda: not rows_everywhere(server_id))  # the compute agent soft-deleted it
    assert len(rows_everywhere(server_id, read_deleted="only")) == 1


def test_delete_of_a_cell0_server_is_local(client: Client) -> None:
    server_id = boot(client, "huge-doomed", flavor="m1.huge")
    settled(client, server_id)
    client.expect(204, "DELETE", f"/servers/{server_id}")
    client.expect(404, "GET", f"/servers/{server_id}")
    assert not rows_everywhere(server_id)


def test_list_pages_sorted_across_cells(client: Client) -> None:
    ids = [boot(client, f"page-{i:02d}", project="paged") for i in range(12)]
    for server_id in ids:
        settled(client, server_id)
    servers, pages, _ = client.list_all(
        limit=5, project_id="paged", sort_key="display_name", sort_dir="desc"
    )
    assert [s["name"] for s in servers] == [f"page-{i:02d}" for i in reversed(range(12))]
    assert pages == 3 and {s["id"] for s in servers} == set(ids)
    cells = {cellrouter.InstanceMapping.get_by_instance_uuid(None, i).cell_uuid for i in ids}
    assert len(cells) == 2  # both cells took some
    default = client.expect(200, "GET", "/servers?project_id=paged&limit=3")
    assert [s["name"] for s in default["servers"]] == ["page-11", "page-10", "page-09"]
    two = client.expect(
        200, "GET", "/servers?project_id=paged&sort_key=host&sort_key=uuid&sort_dir=asc"
    )
    assert [(s["host"], s["id"]) for s in two["servers"]] == sorted(
        (s["host"], s["id"]) for s in servers
    )
    assert two["partial"] is False and two["unavailable_cells"] == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        (f"limit={MAX_LIMIT + 1}", "limit"),
        ("limit=99999999999999999999", "limit"),
        ("limit=1&limit=2", "once"),
        ("marker=not-a-uuid", "marker"),
        (f"marker={uuid.uuid4()}", "Marker"),
        ("sort_key=bogus", "bogus"),
        ("sort_key=display_description", "display_description"),
        ("sort_key=uuid&sort_key=uuid", "once"),
        ("sort_dir=sideways", "sort_dir"),
        ("sort_key=uuid&sort_dir=asc&sort_dir=desc", "sort_dir"),
        ("project_id=", "project_id"),
        ("down_cell_records=maybe", "down_cell_records"),
        ("colour=red", "colour"),
    ],
)
def test_bad_list_parameters_are_400(client: Client, query: str, words: str) -> None:
    status, answer = client.request("GET", "/servers?" + query)
    assert status == 400, answer
    assert words in answer["error"]["message"] and answer["error"]["code"] == 400


@pytest.mark.parametrize(
    "body",
    [
        {"flavor": "m1.tiny", "project": "p"},
        {"name": "", "flavor": "m1.tiny", "project": "p"},
        {"name": "x" * 256, "flavor": "m1.tiny", "project": "p"},
        {"name": 5, "flavor": "m1.tiny", "project": "p"},
        {"name": "x", "flavor": "m9.nope", "project": "p"},
        {"name": "x", "project": "p"},
        {"name": "x", "flavor": "m1.tiny", "project": 5},
        {"name": "x", "flavor": "m1.tiny", "project": "p", "extra": 1},
        ["name", "x"],
        "text",
    ],
)
def test_bad_boot_bodies_are_400(client: Client, body: Any) -> None:
    status, answer = client.request("POST", "/servers", body)
    assert status == 400, answer
    assert answer["error"]["message"]


def test_unparsable_json_is_400(client: Client) -> None:
    status, answer = raw(client, "POST", "/servers", b"{not json", "application/json")
    assert status == 400 and "JSON" in answer["error"]["message"]
    status, answer = raw(client, "POST", "/servers", b"name=x", "text/plain")
    assert status == 400


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_bad_and_unknown_server_ids(client: Client, method: str) -> None:
    status, answer = client.request(method, "/servers/nope")
    assert status == 400 and "not a UUID" in answer["error"]["message"]
    status, _ = client.request(method, f"/servers/{uuid.uuid4().hex}")
    assert status == 400
    status, answer = client.request(method, f"/servers/{uuid.uuid4()}")
    assert status == 404 and "no mapping" in answer["error"]["message"]


def test_unknown_routes_and_methods_answer_json(client: Client) -> None:
    status, answer = client.request("GET", "/nowhere")
    assert status == 404 and answer["error"]["code"] == 404
    status, answer = client.request("PUT", "/servers")
    assert status == 405 and answer["error"]["code"] == 405


def test_cells_lists_every_cell_with_masked_urls(
    client: Client, embedded: EmbeddedDeployment
) -> None:
    cells = client.expect(200, "GET", "/cells")["cells"]
    assert {c["uuid"] for c in cells} == {c.uuid for c in embedded.cells.values()}
    for cell in cells:
        mapping = embedded.cells[cell["name"]]
        assert cell["database_connection"] == cellrouter.mask_url(mapping.database_connection)
        assert cell["transport_url"] == cellrouter.mask_url(mapping.transport_url)
        assert cell["health"]["up"] is True
        assert cell["hosts"] == (0 if cell["name"] == "cell0" else 3)
        assert isinstance(cell["instances"], int)


def test_status_page_shows_every_cell(client: Client, embedded: EmbeddedDeployment) -> None:
    with urllib.request.urlopen(client.base + "/") as response:
        page = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/html")
    for cell in embedded.cells.values():
        assert f'data-uuid="{cell.uuid}"' in page and f"<td>{cell.name}</td>" in page


def test_a_down_cell_is_503_for_show_and_partial_for_list(
    client: Client, embedded: EmbeddedDeployment, tmp_path: Any
) -> None:
    ids = [boot(client, f"victim-{i}", project="down") for i in range(6)]
    servers = [settled(client, server_id) for server_id in ids]
    victim = embedded.cells["cell2"]
    in_victim = [s["id"] for s in servers if s["cell"]["uuid"] == victim.uuid]
    assert in_victim, "the test needs a server in cell2"
    cellrouter.command.update_cell(
        victim.uuid, database_connection=f"sqlite:///{tmp_path}/gone/cell2.db"
    )
    try:
        status, answer = client.request("GET", f"/servers/{in_victim[0]}")
        assert status == 503 and "cell2" in answer["error"]["message"]
        page = client.expect(200, "GET", "/servers?project_id=down")
        assert page["partial"] is True
        assert [c["name"] for c in page["unavailable_cells"]] == ["cell2"]
        assert {s["id"] for s in page["servers"]} == set(ids) - set(in_victim)
        records = client.expect(200, "GET", "/servers?project_id=down&down_cell_records=true")
        unknown = {s["id"] for s in records["servers"] if s["status"] == "UNKNOWN"}
        assert unknown == set(in_victim) and len(records["servers"]) == len(ids)
        cells = {c["name"]: c for c in client.expect(200, "GET", "/cells")["cells"]}
        assert cells["cell2"]["health"]["up"] is False
        status, answer = client.request("DELETE", f"/servers/{in_victim[0]}")
        assert status == 503
    finally:
        cellrouter.command.update_cell(victim.uuid, database_connection=victim.database_connection)
    client.expect(200, "GET", f"/servers/{in_victim[0]}")


def test_errors_map_through_the_exception_bases() -> None:
    assert status_for(exception.InstanceMappingNotFound(uuid="u")) == 404
    assert status_for(exception.InvalidMarker(marker="m")) == 400
    assert status_for(exception.CellHasNoQueue(cell="c")) == 409
    assert status_for(exception.CellUnavailable(cell="c", reason="r")) == 503
    assert status_for(exception.UpcallForbidden(what="w")) == 500
