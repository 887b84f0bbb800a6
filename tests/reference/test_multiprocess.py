"""The multi-process deployment on MariaDB (api, cell0, cell1, cell2) and RabbitMQ
(one vhost per cell and one for the API level): 200 servers over HTTP, the
callers named by keystonemiddleware's headers (``auth_strategy = keystone``)."""

from __future__ import annotations

import concurrent.futures
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
from reference_helpers import reset_cellrouter, rows_everywhere, wait_for

import cellrouter
from cellrouter.reference.demo import Client
from cellrouter.reference.deployment import CellSpec, ProcessDeployment, Topology

pytestmark = pytest.mark.functional

SERVERS = 200


def _name(label: str) -> str:
    return f"crtest_ref_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topology() -> Iterator[Topology]:
    servers.require_mariadb()
    servers.require_rabbitmq(vhosts=True)
    databases = {key: _name(key) for key in ("api", "cell0", "cell1", "cell2")}
    vhosts = {key: _name(key) for key in ("api", "cell1", "cell2")}
    urls = {key: servers.create_mysql_database(name) for key, name in databases.items()}
    queues = {key: servers.create_rabbitmq_vhost(name) for key, name in vhosts.items()}
    try:
        yield Topology(
            api_database=urls["api"],
            cell0_database=urls["cell0"],
            api_transport_url=queues["api"],
            cells=tuple(
                CellSpec(key, urls[key], queues[key], (f"{key}-a", f"{key}-b"))
                for key in ("cell1", "cell2")
            ),
        )
    finally:
        reset_cellrouter()
        for name in databases.values():
            servers.drop_mysql_database(name)
        for name in vhosts.values():
            servers.delete_rabbitmq_vhost(name)


def test_two_hundred_servers_across_processes(topology: Topology, tmp_path: Path) -> None:
    deployment = ProcessDeployment(topology, tmp_path, api_workers=2).start()
    try:
        assert len(deployment.discovered.new_hosts) == 4
        assert set(deployment.processes) == {"compute-cell1", "compute-cell2", "conductor", "api"}
        assert Client(deployment.url).request("GET", "/servers")[0] == 401  # no project
        client = Client(deployment.url).as_caller("operators", "op", ["admin"])

        def boot(i: int) -> str:
            body = {"name": f"mp-{i:03d}", "flavor": "m1.tiny", "project": f"p{i % 3}"}
            return str(client.expect(202, "POST", "/servers", body)["server"]["id"])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(boot, range(SERVERS)))

        def all_active() -> list[dict[str, object]] | None:
            listed, _, _ = client.list_all(limit=1000)
            done = len(listed) == SERVERS and all(s["status"] == "ACTIVE" for s in listed)
            return listed if done else None

        listed = wait_for(all_active, timeout=180)
        # every gunicorn worker scopes a tenant to its project
        tenant = Client(deployment.url).as_caller("p1", "u1", ["member"])
        own = {s["id"] for s in listed if s["project_id"] == "p1"}
        for _ in range(4):
            assert {s["id"] for s in tenant.list_all(limit=1000, project_id="p2")[0]} == own
        foreign = next(s["id"] for s in listed if s["project_id"] == "p2")
        assert tenant.request("DELETE", f"/servers/{foreign}")[0] == 404
        # each landed in exactly one cell, and its mapping says which
        ctx = cellrouter.get_admin_context()  # this process is the operator (api.conf)
        mappings = {
            m.instance_uuid: m for m in cellrouter.InstanceMapping.get_by_instance_uuids(ctx, ids)
        }
        per_cell: dict[str, int] = {}
        for server_id in ids:
            rows = rows_everywhere(server_id)
            assert len(rows) == 1, (server_id, rows)
            (cell_name,) = rows
            mapping = mappings[server_id]
            assert mapping.cell_mapping is not None and mapping.cell_mapping.name == cell_name
            per_cell[cell_name] = per_cell.get(cell_name, 0) + 1
        assert set(per_cell) == {"cell1", "cell2"}
        assert cellrouter.BuildRequest.get_all(ctx) == []
        # pages through the list: every server once, in order
        walked, pages, _ = client.list_all(limit=37, sort_key="display_name", sort_dir="asc")
        assert [s["name"] for s in walked] == [f"mp-{i:03d}" for i in range(SERVERS)]
        assert pages == -(-SERVERS // 37)
        # a show goes through the mapping to the right cell
        shown = client.expect(200, "GET", f"/servers/{ids[0]}")["server"]
        assert shown["cell"]["uuid"] == mappings[ids[0]].cell_uuid
        # delete them all
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: client.expect(204, "DELETE", f"/servers/{i}"), ids))
        wait_for(lambda: client.list_all(limit=1000)[0] == [], timeout=120)
        for server_id in ids[:20]:
            client.expect(404, "GET", f"/servers/{server_id}")
        cells = client.expect(200, "GET", "/cells")["cells"]
        used = sum(n["memory_mb_used"] for c in cells for n in c["compute_nodes"])
        assert used == 0
    finally:
        deployment.stop()
