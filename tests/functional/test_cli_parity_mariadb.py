"""nova-manage parity of ``cellrouter-manage`` on MariaDB (and RabbitMQ), via the script.

What SQLite cannot show: a cell0 database that does not exist ("Unknown
database"), a wrong password, a missing vhost. Rows are read straight from the
databases before and after each run; no output may carry the password.
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
from backends import execute

from cellrouter.db import migration
from cellrouter.db.api_schema import cell_mappings, host_mappings, instance_mappings
from cellrouter.db.cell_schema import compute_nodes, instances

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")
SECRET = "ParityS3cretPw"


class Cli:
    """``cellrouter-manage`` with one config file; checks no run prints the password."""

    def __init__(self, path: Path, api: str, local: str, transport: str = "fake://local/"):
        self.path = path
        path.write_text(
            f"[DEFAULT]\ntransport_url = {transport}\n"
            f"[api_database]\nconnection = {api}\n[database]\nconnection = {local}\n"
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(SCRIPT), "--config-file", str(self.path), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert SECRET not in proc.stdout + proc.stderr, proc
        return proc


@pytest.fixture
def secret_user(mysql_db_factory: Callable[..., str]) -> Iterator[Callable[[str, str], str]]:
    """``make(url, password)``: ``url`` as a MariaDB user whose password is SECRET."""
    user = f"crtest_{uuidlib.uuid4().hex[:12]}"
    admin = servers.mysql_url("mysql")
    servers.admin_execute(admin, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{SECRET}'")

    def make(url: str, password: str = SECRET) -> str:
        parsed = sa.make_url(url)
        servers.admin_execute(admin, f"GRANT ALL ON `{parsed.database}`.* TO '{user}'@'%'")
        return parsed.set(username=user, password=password).render_as_string(hide_password=False)

    yield make
    servers.admin_execute(admin, f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.fixture
def deployment(mysql_db_factory: Callable[..., str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A synced API database, a synced local cell database, and its ``_cell0`` name."""
    api, local = mysql_db_factory("api"), mysql_db_factory("cell")
    migration.sync("api", api)
    migration.sync("cell", local)
    cell0_name = f"{sa.make_url(local).database}_cell0"
    yield {
        "api": api,
        "local": local,
        "cell0": cell0_name,
        "cli": Cli(tmp_path / "c.conf", api, local),
    }
    servers.drop_mysql_database(cell0_name)


def cell_uuids(api: str) -> set[str]:
    return {uuid for (uuid,) in execute(api, sa.select(cell_mappings.c.uuid))}


def test_simple_cell_setup_missing_cell0_database_maps_nothing(
    deployment: dict[str, Any],
) -> None:
    api, local, cell0_name, cli = (deployment[k] for k in ("api", "local", "cell0", "cli"))
    execute(local, sa.insert(compute_nodes).values(host="zz"))
    execute(local, sa.insert(compute_nodes).values(host="aa"))
    instance = str(uuidlib.uuid4())
    execute(local, sa.insert(instances).values(uuid=instance, project_id="p", host="aa"))

    missing = cli("cell_v2", "simple_cell_setup")
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert f"its database {cell0_name} does not exist" in missing.stderr
    assert f"Create the database {cell0_name}, then run simple_cell_setup again." in missing.stderr
    assert cell_uuids(api) == set()  # nothing half-mapped: no cell0 pointing nowhere
    assert "3 cell0's database does not exist" in cli("cell_v2", "simple_cell_setup", "-h").stdout

    servers.create_mysql_database(cell0_name)
    done = cli("cell_v2", "simple_cell_setup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert migration.version("cell", servers.mysql_url(cell0_name)) == migration.head("cell")
    assert len(cell_uuids(api)) == 2
    hosts = execute(api, sa.select(host_mappings.c.host))
    assert sorted(h for (h,) in hosts) == ["aa", "zz"]
    assert execute(api, sa.select(instance_mappings.c.instance_uuid)) == [(instance,)]

    listed = cli("cell_v2", "list_hosts")
    names = [line.split("|")[3].strip() for line in listed.stdout.splitlines()[3:-1]]
    assert names == ["aa", "zz"]


def test_db_sync_migrates_cell0_and_stops_when_it_does_not_exist(
    deployment: dict[str, Any],
) -> None:
    api, local, cell0_name, cli = (deployment[k] for k in ("api", "local", "cell0", "cli"))
    migration.sync("cell", local, "base")
    assert cli("cell_v2", "map_cell0").returncode == 0
    missing = cli("db", "sync")
    assert missing.returncode == 255 and missing.stdout == "", missing.stderr
    assert f"its database {cell0_name} does not exist" in missing.stderr
    assert migration.version("cell", local) is None  # stopped before [database]/connection

    cell0 = servers.create_mysql_database(cell0_name)
    run = cli("db", "sync")
    assert run.returncode == 0, run.stderr
    head = migration.head("cell")
    assert [line.split(" (")[0] for line in run.stdout.splitlines()] == [
        f"cell cell0(00000000-0000-0000-0000-000000000000): base -> {head}",
        f"cell database: base -> {head}",
    ]
    assert f"/{cell0_name}?" in run.stdout.splitlines()[0]
    assert migration.version("cell", cell0) == migration.version("cell", local) == head


def test_status_exit_2_for_a_cell_without_schema(
    deployment: dict[str, Any], mysql_db_factory: Callable[..., str]
) -> None:
    cli = deployment["cli"]
    empty = mysql_db_factory("empty")
    assert cli("cell_v2", "create_cell", "--name", "e", "--database_connection", empty,
               "--transport-url", "fake://e/").returncode == 0  # fmt: skip
    run = cli("cell_v2", "status")
    assert run.returncode == 2, run.stdout + run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("| e "))
    assert "| no schema " in row


def test_create_and_update_cell_warn_about_what_cannot_be_reached(
    deployment: dict[str, Any],
    mysql_db_factory: Callable[..., str],
    secret_user: Callable[..., str],
) -> None:
    servers.require_rabbitmq()
    api, cli = deployment["api"], deployment["cli"]
    good = mysql_db_factory("good")
    wrong_password = secret_user(good, "not-the-password")
    missing_db = secret_user(servers.mysql_url(f"crtest_nosuch_{uuidlib.uuid4().hex[:8]}"))
    no_vhost = servers.rabbit_url(f"crtest_nosuch_{uuidlib.uuid4().hex[:8]}")
    before = cell_uuids(api)
    runs = [
        cli("cell_v2", "create_cell", "--name", "pw", "--database_connection", wrong_password,
            "--transport-url", "fake://pw/"),
        cli("cell_v2", "create_cell", "--name", "db", "--database_connection", missing_db,
            "--transport-url", no_vhost),
        cli("cell_v2", "create_cell", "--name", "pw", "--database_connection", secret_user(good),
            "--transport-url", "fake://ok/"),
    ]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert "its database cannot be reached" in runs[0].stderr and "1045" in runs[0].stderr
    assert "1049" in runs[1].stderr and "vhost" in runs[1].stderr
    assert len(runs[1].stderr.splitlines()) == 2
    assert (
        runs[2].stderr.splitlines()
        == [line for line in runs[2].stderr.splitlines() if "has the same name" in line]
        != []
    )
    assert len(cell_uuids(api)) == len(before) + 3

    [pw_uuid] = [
        u
        for (u,) in execute(
            api,
            sa.select(cell_mappings.c.uuid).where(cell_mappings.c.transport_url == "fake://pw/"),
        )
    ]
    other_vhost = servers.rabbit_url(f"crtest_nosuch_{uuidlib.uuid4().hex[:8]}")
    update = cli("cell_v2", "update_cell", "--cell_uuid", pw_uuid, "--transport-url", other_vhost)
    assert update.returncode == 0 and "message queue cannot be reached" in update.stderr


def test_api_database_errors_name_the_option(
    mysql_db_factory: Callable[..., str], secret_user: Callable[..., str], tmp_path: Path
) -> None:
    api = mysql_db_factory("api")
    wrong_password = secret_user(api, "not-the-password")
    no_database = secret_user(servers.mysql_url(f"crtest_nosuch_{uuidlib.uuid4().hex[:8]}"))
    for name, url in (("pw", wrong_password), ("nodb", no_database)):
        cli = Cli(tmp_path / f"{name}.conf", url, servers.mysql_url("mysql"))
        for args in (("cell_v2", "list_cells"), ("api_db", "version")):
            run = cli(*args)
            assert run.returncode == 1, run.stderr
            assert run.stderr.startswith("The API database ([api_database]/connection = ")
            assert ":****@" in run.stderr
