"""The cell compute agent: configured with its cell only, it never reaches the API database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from reference_helpers import reset_cellrouter, wait_for

import cellrouter
from cellrouter import exception
from cellrouter.reference.compute import ComputeAgent
from cellrouter.reference.deployment import Topology, prepare, write_configs


@pytest.fixture
def isolated() -> Iterator[None]:
    try:
        yield
    finally:
        reset_cellrouter()


def test_the_agent_never_connects_to_the_api_database(tmp_path: Path, isolated: None) -> None:
    topology = Topology.sqlite(tmp_path, cells=1, hosts_per_cell=1)
    paths = write_configs(topology, tmp_path)
    cell = prepare(topology, paths["api"])["cell1"]  # as the operator
    assert "[api_database]" not in paths["cell1"].read_text()
    # From here on this process is the compute host: only its cell's file.
    cellrouter.setup(["--config-file", str(paths["cell1"])])
    with pytest.raises(exception.UpcallForbidden):
        cellrouter.CellMapping.get_all(None)
    databases: list[str | None] = []

    def connected(conn: sa.Connection) -> None:
        databases.append(conn.engine.url.database)

    sa.event.listen(sa.engine.Engine, "engine_connect", connected)
    try:
        agent = ComputeAgent("cell1-host1").start()  # [database] and [DEFAULT] only
        try:
            ctx = cellrouter.get_admin_context()
            with cellrouter.target_cell(ctx, cell) as cctx:  # the conductor's side
                nodes = cellrouter.get_compute_nodes(cctx)
                assert [(n.host, n.mapped) for n in nodes] == [("cell1-host1", False)]
                server = cellrouter.create_instance(
                    cctx, vm_state="building", host="cell1-host1", memory_mb=512, vcpus=1
                )
                compute = cctx.rpc_client("compute", server="cell1-host1")
                flavor = {"name": "m1.tiny", "vcpus": 1, "memory_mb": 512, "root_gb": 1}
                compute.cast(ctx.to_dict(), "build", instance_uuid=server, flavor=flavor)
                wait_for(lambda: cellrouter.get_instance(cctx, server)["vm_state"] == "active")
                compute.cast(ctx.to_dict(), "delete", instance_uuid=server)
                wait_for(lambda: agent.deletes == 1)
                with pytest.raises(exception.InstanceNotFound):
                    cellrouter.get_instance(cctx, server)
        finally:
            agent.stop()
    finally:
        sa.event.remove(sa.engine.Engine, "engine_connect", connected)
    assert agent.builds == 1
    cell_db = sa.make_url(cell.database_connection).database
    api_db = sa.make_url(topology.api_database).database
    assert databases and set(databases) == {cell_db} and api_db not in databases


def test_the_agent_refuses_a_configuration_with_the_api_database(
    tmp_path: Path, isolated: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from cellrouter.reference import compute

    topology = Topology.sqlite(tmp_path, cells=1, hosts_per_cell=1)
    paths = write_configs(topology, tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        compute.main(["--config-file", str(paths["api"]), "--host", "h1"])
    assert exit_info.value.code == 2
    assert "must not set [api_database]/connection" in capsys.readouterr().err


def test_registered_hosts_are_discovered(tmp_path: Path, isolated: None) -> None:
    topology = Topology.sqlite(tmp_path, cells=2, hosts_per_cell=2)
    paths = write_configs(topology, tmp_path)
    cells = prepare(topology, paths["api"])
    ctx = cellrouter.get_admin_context()
    for spec in topology.cells:
        with cellrouter.target_cell(ctx, cells[spec.name]) as cctx:
            for host in spec.hosts:
                cellrouter.register_compute_node(cctx, host, vcpus=8, memory_mb=1024, local_gb=10)
    found = cellrouter.command.discover_hosts()
    assert sorted(found.new_hosts) == sorted(
        (cells[spec.name].uuid, host) for spec in topology.cells for host in spec.hosts
    )
    assert cellrouter.HostMapping.get_by_host(ctx, "cell2-host2").cell_mapping.name == "cell2"
