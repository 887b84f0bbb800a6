"""``cellrouter-manage cell_v2`` main paths on MariaDB (and ``status`` on RabbitMQ).

The CLI runs as a real subprocess against uniquely named databases. One cell
database is reached through its own MariaDB user with a password, so the
masking of every output is checked against a password that really works.
"""

from __future__ import annotations

import subprocess
import sys
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
import sqlalchemy as sa

from cellrouter.db import migration
from cellrouter.db.cell_schema import compute_nodes, instances

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")
SECRET = "CellS3cretPw"


class Cli:
    """``cellrouter-manage cell_v2 ...`` with one config file; keeps every output."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.outputs: list[str] = []

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(SCRIPT), "--config-file", str(self.config), "cell_v2", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.outputs.append(proc.stdout + proc.stderr)
        return proc


def table_rows(stdout: str) -> dict[str, str]:
    """The rows of the table in ``stdout``, by their first column (header left out)."""
    rows = [line for line in stdout.splitlines() if line.startswith("| ")][1:]
    return {row.split("|")[1].strip(): row for row in rows}


def write_config(path: Path, api: str, database: str, transport: str) -> Path:
    path.write_text(
        f"[DEFAULT]\ntransport_url = {transport}\n"
        f"[api_database]\nconnection = {api}\n"
        f"[database]\nconnection = {database}\n"
    )
    return path


def execute(url: str, stmt: Any, rows: list[dict[str, Any]] | None = None) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(stmt, rows) if rows is not None else conn.execute(stmt)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def add_nodes(url: str, *hosts: str) -> None:
    execute(
        url,
        sa.insert(compute_nodes),
        [{"host": h, "hypervisor_hostname": f"{h}-node"} for h in hosts],
    )


def add_instances(url: str, host: str, count: int) -> list[str]:
    uuids = [str(uuidlib.uuid4()) for _ in range(count)]
    execute(
        url,
        sa.insert(instances),
        [{"uuid": u, "project_id": "p", "host": host, "deleted": 0} for u in uuids],
    )
    return uuids


@pytest.fixture
def cell0_database(mysql_db_factory: Callable[..., str]) -> Iterator[Callable[[str], str]]:
    """``make(cell_url)``: create ``<its database>_cell0``, where simple_cell_setup puts cell0."""
    created: list[str] = []

    def make(cell_url: str) -> str:
        name = f"{sa.make_url(cell_url).database}_cell0"
        created.append(name)
        return servers.create_mysql_database(name)

    yield make
    for name in created:
        servers.drop_mysql_database(name)


@pytest.fixture
def secret_user_url(mysql_db_factory: Callable[..., str]) -> Iterator[Callable[[str], str]]:
    """``make(url)``: ``url`` reached as a new MariaDB user with password SECRET."""
    user = f"crtest_{uuidlib.uuid4().hex[:12]}"
    admin = servers.mysql_url("mysql")
    servers.admin_execute(admin, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{SECRET}'")

    def make(url: str) -> str:
        parsed = sa.make_url(url)
        servers.admin_execute(admin, f"GRANT ALL ON `{parsed.database}`.* TO '{user}'@'%'")
        return parsed.set(username=user, password=SECRET).render_as_string(hide_password=False)

    yield make
    servers.admin_execute(admin, f"DROP USER IF EXISTS '{user}'@'%'")


def test_cell_v2_main_paths(
    mysql_db_factory: Callable[..., str],
    cell0_database: Callable[[str], str],
    secret_user_url: Callable[[str], str],
    tmp_path: Path,
) -> None:
    api, local, remote = (mysql_db_factory(label) for label in ("api", "local", "remote"))
    cell0_database(local)
    migration.sync("api", api)
    for url in (local, remote):
        migration.sync("cell", url)
    add_nodes(local, "l1", "l2")
    local_instances = add_instances(local, "l1", 3)
    cli = Cli(write_config(tmp_path / "c.conf", api, local, f"fake://u:{SECRET}@local/"))

    first, again = cli("simple_cell_setup"), cli("simple_cell_setup")
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert "2 new host(s), 3 new instance mapping(s)" in first.stdout
    assert "already mapped" in again.stdout
    assert cli("verify_instance", "--uuid", local_instances[0]).returncode == 0

    remote_url = secret_user_url(remote)
    created = cli(
        "create_cell", "--name", "remote", "--database_connection", remote_url,
        "--transport-url", "fake://remote/", "--verbose",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    remote_uuid = created.stdout.strip()
    duplicate = cli(
        "create_cell", "--database_connection", remote_url, "--transport-url", "fake://dup/"
    )
    assert duplicate.returncode == 2
    # a transport URL whose driver oslo.messaging does not know is refused first
    unknown = cli("create_cell", "--database_connection", remote_url, "--transport-url", "x://")
    assert unknown.returncode == 1 and "unknown transport driver" in unknown.stderr

    listed = cli("list_cells")
    # sorted by name; the cell simple_cell_setup made has none
    assert list(table_rows(listed.stdout)) == ["", "cell0", "remote"]

    add_nodes(remote, "r1", "r2")
    remote_instances = add_instances(remote, "r1", 3)
    discovered = cli("discover_hosts", "--cell_uuid", remote_uuid, "--verbose", "--strict")
    assert discovered.returncode == 0 and "r1" in discovered.stdout and "r2" in discovered.stdout
    partial = cli("map_instances", "--cell_uuid", remote_uuid, "--max-count", "2")
    rest = cli("map_instances", "--cell_uuid", remote_uuid)
    assert (partial.returncode, rest.returncode) == (1, 0)

    assert cli("update_cell", "--cell_uuid", remote_uuid, "--disable").returncode == 0
    status = cli("status")
    assert status.returncode == 0, status.stdout
    assert "All 3 cell(s) reachable" in status.stdout
    assert cli("list_hosts", "--cell_uuid", remote_uuid).stdout.count("| remote") == 2

    assert cli("delete_host", "--cell_uuid", remote_uuid, "--host", "r1").returncode == 4
    assert cli("delete_host", "--cell_uuid", remote_uuid, "--host", "r2").returncode == 0
    assert cli("delete_cell", "--cell_uuid", remote_uuid).returncode == 2
    assert cli("delete_cell", "--cell_uuid", remote_uuid, "--force").returncode == 3
    execute(remote, sa.update(instances).values(deleted=instances.c.id))
    assert cli("delete_cell", "--cell_uuid", remote_uuid).returncode == 2
    forced = cli("delete_cell", "--cell_uuid", remote_uuid, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "1 host mapping(s) and 3 instance mapping(s)" in forced.stdout
    assert cli("verify_instance", "--uuid", remote_instances[0]).returncode == 1
    flags = execute(remote, sa.select(compute_nodes.c.host, compute_nodes.c.mapped))
    assert sorted((host, bool(mapped)) for host, mapped in flags) == [
        ("r1", False),
        ("r2", False),
    ]

    for output in cli.outputs:
        assert SECRET not in output, output


def test_status_probes_rabbitmq(mysql_db_factory: Callable[..., str], tmp_path: Path) -> None:
    """A real AMQP connect: the right credentials are reachable, wrong ones are not."""
    good = servers.require_rabbitmq()
    bad = good.replace("guest:guest@", f"guest:{SECRET}@")
    api, cell_a, cell_b = (mysql_db_factory(label) for label in ("api", "a", "b"))
    migration.sync("api", api)
    cli = Cli(write_config(tmp_path / "c.conf", api, cell_a, good))
    for name, url, transport in (("good", cell_a, good), ("bad", cell_b, bad)):
        run = cli("create_cell", "--name", name, "--database_connection", url,
                  "--transport-url", transport)  # fmt: skip
        assert run.returncode == 0, run.stderr

    status = cli("status", "--verbose")
    assert status.returncode == 1, status.stdout
    rows = table_rows(status.stdout)
    assert rows["good"].count("ok (") == 2
    assert "UNREACHABLE" in rows["bad"] and "ACCESS_REFUSED" in status.stdout
    assert all(SECRET not in output for output in cli.outputs)
