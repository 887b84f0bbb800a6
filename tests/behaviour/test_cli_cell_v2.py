"""``cellrouter-manage cell_v2`` through the real console script, on every backend.

Every exit code of every cell_v2 command is provoked here. Databases are set
up in-process on the ``backend`` of ``tests/backends.py`` (SQLite, MariaDB,
PostgreSQL; fixtures of ``tests/conftest.py``); the CLI runs as a separate
process with a config file pointing at the same databases.
Every run is recorded and, at teardown, checked for clear-text passwords:
only ``list_cells --verbose`` may show them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from backends import Backend
from oslo_config import cfg

from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.db import migration
from cellrouter.db.cell_schema import compute_nodes, instances, services
from cellrouter.index.cell_mapping import CELL0_UUID, NO_TRANSPORT_URL, CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.manage import commands as command

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]
SCRIPT = Path(sys.executable).with_name("cellrouter-manage")

DB_SECRET = "DbS3cretPw"
MQ_SECRET = "MqS3cretPw"
QUERY_SECRET = "QueryS3cretPw"
SECRETS = (DB_SECRET, MQ_SECRET, QUERY_SECRET)
#: URLs that carry secrets: the database one on a closed port, so probes fail fast
SECRET_DB_URL = f"mysql+pymysql://nova:{DB_SECRET}@127.0.0.1:1/nova?ssl_disabled=true"
SECRET_QUERY_DB_URL = f"mysql+pymysql://nova@127.0.0.1:1/nova?password={QUERY_SECRET}"
SECRET_MQ_URL = f"rabbit://a:{MQ_SECRET}@127.0.0.1:1,b:{MQ_SECRET}@127.0.0.1:2/vhost"


@dataclasses.dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs ``cellrouter-manage`` with its own config file; records every run."""

    def __init__(self, path: Path, settings: dict[str, dict[str, str]], runs: list[Run]) -> None:
        self.path = path
        self.settings = settings
        self.runs = runs
        lines = []
        for section, values in settings.items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {value}" for key, value in values.items()]
        path.write_text("\n".join(lines) + "\n")

    def __call__(self, *args: str) -> Run:
        proc = subprocess.run(
            [str(SCRIPT), "--config-file", str(self.path), "cell_v2", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        run = Run(args, proc.returncode, proc.stdout, proc.stderr)
        self.runs.append(run)
        return run

    def many(self, *commands: Sequence[str]) -> list[Run]:
        """Run independent commands concurrently (results in order)."""
        with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
            return list(pool.map(lambda args: self(*args), commands))

    def variant(self, name: str, section: str, key: str, value: str | None) -> Cli:
        """The same CLI with one option changed (None: unset), in config file ``name``."""
        settings = {sec: dict(values) for sec, values in self.settings.items()}
        settings.setdefault(section, {}).pop(key, None)
        if value is not None:
            settings[section][key] = value
        return Cli(self.path.with_name(name), settings, self.runs)


def assert_no_secrets(runs: Sequence[Run]) -> None:
    for run in runs:
        if run.args[:1] == ("list_cells",) and "--verbose" in run.args:
            continue
        for secret in SECRETS:
            assert secret not in run.output, f"{run.args} printed a password:\n{run.output}"


def codes(runs: Sequence[Run]) -> list[int]:
    return [run.code for run in runs]


@pytest.fixture(autouse=True)
def read_the_database(conf: cfg.ConfigOpts) -> None:
    """This process checks what ``cellrouter-manage`` (another process) wrote: its
    lookups go to the API database, as with a cache shared with the CLI."""
    conf.set_override("backend", "null", group="cache")
    conf.set_override("refresh_interval", 0, group="cells")


@pytest.fixture
def local_db(backend: Backend) -> str:
    """``[database]/connection`` of the CLI: a migrated cell database (SQLite: ``nova.db``)."""
    return backend.migrated("cell", "nova")


@pytest.fixture
def cli(api_db: str, local_db: str, tmp_path: Path) -> Iterator[Cli]:
    runs: list[Run] = []
    settings = {
        "DEFAULT": {"transport_url": f"fake://local:{MQ_SECRET}@local/"},
        "api_database": {"connection": api_db},
        "database": {"connection": local_db},
    }
    yield Cli(tmp_path / "cellrouter.conf", settings, runs)
    assert_no_secrets(runs)


def add_nodes(db_url: str, *hosts: str, mapped: bool = False) -> None:
    rows = [{"host": h, "hypervisor_hostname": f"{h}-node", "mapped": mapped} for h in hosts]
    _insert(db_url, compute_nodes, rows)


def _insert(db_url: str, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), rows)
    finally:
        engine.dispose()


def node_flags(db_url: str) -> dict[str, bool]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(compute_nodes.c.host, compute_nodes.c.mapped))
            return {host: bool(mapped) for host, mapped in rows}
    finally:
        engine.dispose()


def mapped_hosts(ctx: RequestContext) -> dict[str, str]:
    return {m.host: m.cell_mapping.uuid for m in HostMapping.get_all(ctx)}


def new_uuid() -> str:
    return str(uuidlib.uuid4())


# -- map_cell0 ---------------------------------------------------------------------


def test_map_cell0_created_then_already_mapped(
    cli: Cli, admin_ctx: RequestContext, backend: Backend, local_db: str
) -> None:
    first, second = cli("map_cell0"), cli("map_cell0")
    assert (first.code, second.code) == (0, 0)
    assert "mapped" in first.stdout and "already" in second.stdout
    cell0 = CellMapping.get_by_uuid(admin_ctx, CELL0_UUID)
    assert cell0.transport_url == NO_TRANSPORT_URL
    assert cell0.database_connection == backend.sibling(local_db, "_cell0")


@pytest.mark.parametrize(
    ("configured", "cell0"),
    [
        ("sqlite:////x/nova.db", "sqlite:////x/nova_cell0.db"),
        ("sqlite:///nova", "sqlite:///nova_cell0"),
        (
            "mysql+pymysql://nova:p%40ss@db:3306/nova?charset=utf8mb4",
            "mysql+pymysql://nova:p%40ss@db:3306/nova_cell0?charset=utf8mb4",
        ),
    ],
)
def test_default_cell0_url(conf: Any, configured: str, cell0: str) -> None:
    conf.set_override("connection", configured, group="database")
    assert command.default_cell0_url() == cell0


# -- create_cell / list_cells ------------------------------------------------------------


def test_create_cell_exit_codes(
    cli: Cli, make_cells: MakeCells, admin_ctx: RequestContext, backend: Backend
) -> None:
    [cell1] = make_cells(1)
    created = cli(
        "create_cell",
        "--name",
        "new",
        "--database-connection",  # the other spelling of --database_connection
        backend.url("new"),
        "--transport_url",
        f"fake://u:{MQ_SECRET}@new/",
        "--disabled",
        "--verbose",
    )
    assert created.code == 0, created.output
    new = CellMapping.get_by_uuid(admin_ctx, created.stdout.strip())
    assert (new.name, new.disabled) == ("new", True)

    no_mq = cli.variant("no-mq.conf", "DEFAULT", "transport_url", None)
    fresh_db = backend.url("other")
    runs = [
        no_mq("create_cell", "--database_connection", fresh_db),
        cli("create_cell", "--database_connection", "no-such-dialect://x/y"),
        cli("create_cell", "--database_connection", fresh_db, "--transport-url", "not a url"),
        cli("create_cell", "--database_connection", cell1.database_connection),
        cli("create_cell", "--database_connection", fresh_db, "--transport-url", "fake://cell1/"),
        cli("create_cell", "--database_connection", fresh_db, "--transport-url", new.transport_url),
    ]
    assert codes(runs) == [1, 1, 1, 2, 2, 2], [r.output for r in runs]
    assert "transport" in runs[0].stderr and "cell1" in runs[3].stderr
    assert len(CellMapping.get_all(admin_ctx)) == 2


def test_create_cell_defaults_to_config_urls(
    cli: Cli, admin_ctx: RequestContext, local_db: str
) -> None:
    run = cli("create_cell", "--name", "local")
    assert (run.code, run.stdout) == (0, "")
    [cell] = CellMapping.get_all(admin_ctx)
    assert cell.database_connection == local_db
    assert cell.transport_url == cli.settings["DEFAULT"]["transport_url"]


def test_list_cells_sorted_and_masked(
    cli: Cli, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    make_cells(1)
    CellMapping.create(
        admin_ctx, name="zeta", database_connection=SECRET_DB_URL, transport_url=SECRET_MQ_URL
    )
    CellMapping.create(
        admin_ctx,
        name="alpha",
        database_connection=SECRET_QUERY_DB_URL,
        transport_url=f"fake://u:{MQ_SECRET}@alpha/",
    )
    masked, verbose = cli.many(["list_cells"], ["list_cells", "--verbose"])
    assert (masked.code, verbose.code) == (0, 0)
    names = [line.split("|")[1].strip() for line in masked.stdout.splitlines()[3:-1]]
    assert names == ["alpha", "cell1", "zeta"]
    assert masked.stdout.count("****") == 5  # 2 db URLs, 2 rabbit hosts, 1 fake
    for secret in SECRETS:
        assert secret in verbose.stdout  # asked for


# -- update_cell -----------------------------------------------------------------------


def test_update_cell_exit_codes(
    cli: Cli, make_cells: MakeCells, admin_ctx: RequestContext, backend: Backend
) -> None:
    cell1, cell2 = make_cells(2)
    CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=backend.url("cell0"),
        transport_url=NO_TRANSPORT_URL,
    )
    # a running process already talks to cell1
    with target_cell(admin_ctx, cell1) as cctx:
        assert cctx.engine.url.database == sa.make_url(cell1.database_connection).database

    moved_db = backend.url("moved")
    renamed = cli("update_cell", "--cell_uuid", cell1.uuid, "--name", "renamed")
    assert renamed.code == 0, renamed.output
    after = CellMapping.get_by_uuid(admin_ctx, cell1.uuid)
    # options not given keep the cell's values (the config's would differ)
    assert (after.name, after.database_connection, after.transport_url) == (
        "renamed",
        cell1.database_connection,
        cell1.transport_url,
    )

    runs = [
        cli("update_cell", "--cell-uuid", cell1.uuid, "--database_connection", moved_db),
        cli("update_cell", "--cell_uuid", cell1.uuid, "--disable"),
        cli("update_cell", "--cell_uuid", cell1.uuid, "--disable"),
    ]
    assert codes(runs) == [0, 0, 0], [r.output for r in runs]
    assert "already disabled" in runs[2].stdout
    after = CellMapping.get_by_uuid(admin_ctx, cell1.uuid)
    assert (after.database_connection, after.disabled) == (moved_db, True)
    # ... and sees the new URL on its next targeting, without a restart
    with target_cell(admin_ctx, after) as cctx:
        assert cctx.engine.url.database == sa.make_url(moved_db).database

    failures = cli.many(
        ["update_cell", "--cell_uuid", new_uuid(), "--name", "x"],
        ["update_cell", "--cell_uuid", cell1.uuid, "--database_connection", "bogus://"],
        ["update_cell", "--cell_uuid", cell1.uuid, "--transport-url", cell2.transport_url],
        ["update_cell", "--cell_uuid", cell1.uuid, "--disable", "--enable"],
        ["update_cell", "--cell_uuid", CELL0_UUID, "--disable"],
        ["update_cell", "--name", "no uuid given"],
    )
    assert codes(failures) == [1, 2, 3, 4, 5, 2], [r.output for r in failures]
    assert "usage:" in failures[-1].stderr
    assert CellMapping.get_by_uuid(admin_ctx, cell1.uuid) == after


# -- delete_cell -----------------------------------------------------------------------


def test_delete_cell_exit_codes(
    cli: Cli, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    empty, with_hosts, with_live, with_deleted = make_cells(4)
    add_nodes(with_hosts.database_connection, "h1", "h2", mapped=True)
    for host in ("h1", "h2"):
        HostMapping.create(admin_ctx, host=host, cell_mapping=with_hosts)
    make_instance(with_live)
    make_instance(with_hosts, deleted=1)
    for _ in range(2):
        gone = make_instance(with_deleted, deleted=1)
    runs = cli.many(
        ["delete_cell", "--cell_uuid", empty.uuid],
        ["delete_cell", "--cell_uuid", new_uuid()],
        ["delete_cell", "--cell_uuid", with_hosts.uuid],
        ["delete_cell", "--cell_uuid", with_live.uuid, "--force"],
        ["delete_cell", "--cell_uuid", with_deleted.uuid],
    )
    assert codes(runs) == [0, 1, 2, 3, 4], [r.output for r in runs]
    assert {c.uuid for c in CellMapping.get_all(admin_ctx)} == {
        with_hosts.uuid,
        with_live.uuid,
        with_deleted.uuid,
    }

    forced = cli.many(
        ["delete_cell", "--cell_uuid", with_hosts.uuid, "--force"],
        ["delete_cell", "--cell_uuid", with_deleted.uuid, "--force"],
    )
    assert codes(forced) == [0, 0], [r.output for r in forced]
    assert "2 host mapping(s) and 1 instance mapping(s)" in forced[0].stdout
    assert [c.uuid for c in CellMapping.get_all(admin_ctx)] == [with_live.uuid]
    assert mapped_hosts(admin_ctx) == {}
    assert InstanceMapping.get_by_instance_uuids(admin_ctx, [gone]) == []
    assert node_flags(with_hosts.database_connection) == {"h1": False, "h2": False}


def test_delete_cell_force_writes_nothing_when_the_cell_db_fails(
    cli: Cli, admin_ctx: RequestContext, backend: Backend
) -> None:
    dead = CellMapping.create(
        admin_ctx,
        name="dead",
        database_connection=backend.missing("dead"),
        transport_url="fake://dead/",
    )
    HostMapping.create(admin_ctx, host="h1", cell_mapping=dead)
    run = cli("delete_cell", "--cell_uuid", dead.uuid, "--force")
    assert run.code == 255 and "unavailable" in run.stderr, run.output
    assert CellMapping.get_by_uuid(admin_ctx, dead.uuid) == dead
    assert mapped_hosts(admin_ctx) == {"h1": dead.uuid}


# -- discover_hosts / map_instances ----------------------------------------------------------


def test_discover_hosts_exit_codes(
    cli: Cli, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    cell1, cell2 = make_cells(2)
    add_nodes(cell1.database_connection, "host-a", "host-b")
    first = cli("discover_hosts", "--cell_uuid", cell1.uuid, "--verbose")
    assert first.code == 0, first.output
    assert "host-a" in first.stdout and "host-b" in first.stdout
    assert node_flags(cell1.database_connection) == {"host-a": True, "host-b": True}

    add_nodes(cell2.database_connection, "host-a")  # also claims to be in cell2
    _insert(cell2.database_connection, services, [{"host": "svc", "binary": "nova-compute"}])
    runs = [
        cli("discover_hosts", "--cell_uuid", cell1.uuid, "--strict"),
        cli("discover_hosts"),
        cli("discover_hosts", "--cell-uuid", cell2.uuid, "--by_service", "--strict"),
        cli("discover_hosts", "--cell_uuid", new_uuid()),
    ]
    assert codes(runs) == [1, 3, 0, 1], [r.output for r in runs]
    assert "host-a" in runs[1].stderr and cell1.uuid in runs[1].stderr
    assert mapped_hosts(admin_ctx) == {
        "host-a": cell1.uuid,
        "host-b": cell1.uuid,
        "svc": cell2.uuid,
    }


def test_map_instances_exit_codes(
    cli: Cli, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    [cell] = make_cells(1)
    uuids = [make_instance(cell, mapped=False) for _ in range(3)]
    failures = cli.many(
        ["map_instances", "--cell_uuid", cell.uuid, "--max-count", "abc"],
        ["map_instances", "--cell_uuid", cell.uuid, "--max_count", "0"],
        ["map_instances", "--cell_uuid", new_uuid()],
    )
    assert codes(failures) == [127, 127, 2], [r.output for r in failures]
    assert InstanceMapping.count_by_cell(admin_ctx, cell.uuid) == 0

    runs = [
        cli("map_instances", "--cell_uuid", cell.uuid, "--max-count", "2"),
        cli("map_instances", "--cell_uuid", cell.uuid),
        cli("map_instances", "--cell_uuid", cell.uuid, "--reset"),
    ]
    assert codes(runs) == [1, 0, 0], [r.output for r in runs]
    assert "(1 new)" in runs[1].stdout and "(0 new)" in runs[2].stdout
    assert {m.instance_uuid for m in InstanceMapping.get_by_cell(admin_ctx, cell.uuid)} == set(
        uuids
    )


# -- map_cell_and_hosts / simple_cell_setup ---------------------------------------------------


def test_map_cell_and_hosts_exit_codes(cli: Cli, local_db: str, admin_ctx: RequestContext) -> None:
    add_nodes(local_db, "local-host")
    runs = [
        cli("map_cell_and_hosts", "--name", "local", "--verbose"),
        cli("map_cell_and_hosts"),
        cli.variant("no-mq.conf", "DEFAULT", "transport_url", None)("map_cell_and_hosts"),
        cli("map_cell_and_hosts", "--transport-url", "nonsense"),
    ]
    assert codes(runs) == [0, 0, 1, 1], [r.output for r in runs]
    [cell] = CellMapping.get_all(admin_ctx)
    assert (cell.name, cell.database_connection) == ("local", local_db)
    assert runs[0].stdout.splitlines()[-1] == cell.uuid
    assert "local-host" in runs[0].stdout and "already mapped" in runs[1].stdout
    assert mapped_hosts(admin_ctx) == {"local-host": cell.uuid}


def test_simple_cell_setup_exit_codes(
    cli: Cli, local_db: str, admin_ctx: RequestContext, backend: Backend
) -> None:
    backend.create(backend.sibling(local_db, "_cell0"))  # a server's cell0 database exists
    no_hosts = cli("simple_cell_setup")
    assert no_hosts.code == 1 and "No compute hosts" in no_hosts.stderr, no_hosts.output
    assert CellMapping.get_all(admin_ctx) == []  # nothing done

    add_nodes(local_db, "c1")
    instance = new_uuid()
    _insert(local_db, instances, [{"uuid": instance, "project_id": "p", "host": "c1"}])
    runs = [
        cli.variant("no-mq.conf", "DEFAULT", "transport_url", None)("simple_cell_setup"),
        cli("simple_cell_setup"),
        cli("simple_cell_setup", "--transport-url", cli.settings["DEFAULT"]["transport_url"]),
    ]
    assert codes(runs) == [1, 0, 0], [r.output for r in runs]
    assert "already mapped" in runs[2].stdout
    cell0 = CellMapping.get_by_uuid(admin_ctx, CELL0_UUID)
    assert migration.version("cell", cell0.database_connection) == migration.head("cell")
    [cell] = [c for c in CellMapping.get_all(admin_ctx) if not c.is_cell0()]
    assert mapped_hosts(admin_ctx) == {"c1": cell.uuid}
    assert InstanceMapping.get_by_instance_uuid(admin_ctx, instance).cell_uuid == cell.uuid


# -- verify_instance ---------------------------------------------------------------------


def test_verify_instance_exit_codes(
    cli: Cli,
    make_cells: MakeCells,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    backend: Backend,
) -> None:
    [cell] = make_cells(1)
    down = CellMapping.create(
        admin_ctx,
        name="down",
        database_connection=backend.missing("down"),
        transport_url="fake://down/",
    )
    alive = make_instance(cell)
    building = new_uuid()
    InstanceMapping.create(admin_ctx, instance_uuid=building, project_id="p")
    deleted = make_instance(cell, deleted=1)
    archived, unreachable = new_uuid(), new_uuid()
    InstanceMapping.create(admin_ctx, instance_uuid=archived, project_id="p", cell_mapping=cell)
    InstanceMapping.create(admin_ctx, instance_uuid=unreachable, project_id="p", cell_mapping=down)
    runs = cli.many(
        *(
            ["verify_instance", "--uuid", uuid]
            for uuid in (alive, new_uuid(), building, deleted, archived, unreachable)
        ),
        ["verify_instance", "--uuid", archived, "--quiet"],
    )
    assert codes(runs) == [0, 1, 2, 3, 4, 5, 4], [r.output for r in runs]
    assert cell.uuid in runs[0].stdout and "unreachable" in runs[5].stdout
    assert runs[-1].output == ""


# -- list_hosts / delete_host --------------------------------------------------------------


def test_list_hosts_and_delete_host_exit_codes(
    cli: Cli, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    cell1, cell2 = make_cells(2)
    add_nodes(cell1.database_connection, "idle", "busy", mapped=True)
    make_instance(cell1, host="busy")
    make_instance(cell1, host="idle", deleted=1)
    for host, cell in (("idle", cell1), ("busy", cell1), ("other", cell2)):
        HostMapping.create(admin_ctx, host=host, cell_mapping=cell)

    lists = cli.many(
        ["list_hosts"],
        ["list_hosts", "--cell_uuid", cell1.uuid],
        ["list_hosts", "--cell_uuid", new_uuid()],
    )
    assert codes(lists) == [0, 0, 1], [r.output for r in lists]
    assert all(h in lists[0].stdout for h in ("idle", "busy", "other"))
    assert "other" not in lists[1].stdout and "busy" in lists[1].stdout

    runs = cli.many(
        ["delete_host", "--cell_uuid", new_uuid(), "--host", "idle"],
        ["delete_host", "--cell_uuid", cell1.uuid, "--host", "nowhere"],
        ["delete_host", "--cell_uuid", cell1.uuid, "--host", "other"],
        ["delete_host", "--cell_uuid", cell1.uuid, "--host", "busy"],
        ["delete_host", "--cell_uuid", cell1.uuid, "--host", "idle"],
    )
    assert codes(runs) == [1, 2, 3, 4, 0], [r.output for r in runs]
    assert mapped_hosts(admin_ctx) == {"busy": cell1.uuid, "other": cell2.uuid}
    assert node_flags(cell1.database_connection) == {"idle": False, "busy": True}


def test_delete_host_of_a_cell_sharing_the_api_database(
    cli: Cli, api_db: str, admin_ctx: RequestContext
) -> None:
    """One database holding both tiers (development; SQLite: no wait on its own write lock)."""
    migration.sync("cell", api_db)
    cell = CellMapping.create(
        admin_ctx, name="dev", database_connection=api_db, transport_url="fake://dev/"
    )
    add_nodes(api_db, "h", mapped=True)
    HostMapping.create(admin_ctx, host="h", cell_mapping=cell)
    run = cli("delete_host", "--cell_uuid", cell.uuid, "--host", "h")
    assert run.code == 0, run.output
    assert mapped_hosts(admin_ctx) == {}
    assert node_flags(api_db) == {"h": False}


# -- status --------------------------------------------------------------------------------


def test_status_exit_codes(cli: Cli, make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    make_cells(2)
    healthy = cli("status")
    assert healthy.code == 0, healthy.output
    assert "All 2 cell(s) reachable" in healthy.stdout

    CellMapping.create(
        admin_ctx, name="broken", database_connection=SECRET_DB_URL, transport_url=SECRET_MQ_URL
    )
    runs = cli.many(["status"], ["status", "--verbose"])
    assert codes(runs) == [1, 1], [r.output for r in runs]
    for run in runs:
        broken = next(line for line in run.stdout.splitlines() if "| broken" in line)
        assert broken.count("UNREACHABLE") == 2
        assert "1 of 3 cell(s) unreachable" in run.stdout
    assert "mysql+pymysql://nova:****@127.0.0.1:1/nova" in runs[1].stdout


# -- secrets -----------------------------------------------------------------------------


def test_no_output_shows_a_password_unless_verbose_asks(
    cli: Cli, admin_ctx: RequestContext
) -> None:
    """Error paths too: every message naming a secret-bearing URL is masked.

    (Every other run of this module is checked the same way by the ``cli`` fixture.)
    """
    secret = CellMapping.create(
        admin_ctx, name="secret", database_connection=SECRET_DB_URL, transport_url=SECRET_MQ_URL
    )
    HostMapping.create(admin_ctx, host="h", cell_mapping=secret)
    bad_db = f"mysql+nosuchdriver://nova:{DB_SECRET}@db/nova"
    runs = cli.many(
        ["create_cell", "--database_connection", SECRET_DB_URL, "--verbose"],
        ["create_cell", "--database_connection", bad_db, "--transport-url", "fake://x/"],
        ["update_cell", "--cell_uuid", secret.uuid, "--database_connection", bad_db],
        ["delete_cell", "--cell_uuid", secret.uuid, "--force"],
        ["discover_hosts", "--verbose"],
        ["map_cell0", "--database_connection", bad_db],
    )
    assert codes(runs) == [2, 1, 2, 255, 255, 1], [r.output for r in runs]
    assert_no_secrets(runs)
    verbose = cli("list_cells", "--verbose")
    assert DB_SECRET in verbose.stdout and MQ_SECRET in verbose.stdout


def test_argparse_errors_exit_2(cli: Cli) -> None:
    runs = cli.many(["delete_host", "--cell_uuid", new_uuid()], ["no_such_command"])
    assert codes(runs) == [2, 2]


def test_map_instances_shows_progress_only_on_a_terminal(
    cli: Cli, make_cells: MakeCells, make_instance: MakeInstance
) -> None:
    import os
    import pty

    [cell] = make_cells(1)
    for _ in range(3):
        make_instance(cell, mapped=False)
    piped = cli("map_instances", "--cell_uuid", cell.uuid, "--reset")
    assert piped.code == 0 and "examined" not in piped.stderr

    primary, secondary = pty.openpty()  # stderr on a terminal
    try:
        proc = subprocess.run(
            [
                str(SCRIPT),
                "--config-file",
                str(cli.path),
                "cell_v2",
                "map_instances",
                "--cell_uuid",
                cell.uuid,
                "--reset",
            ],
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=120,
            check=False,
        )
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
    assert proc.returncode == 0
    assert b"examined 3 instance(s), mapped 0" in seen


def test_update_cell_enable_empty_name_and_cell0_queue(
    cli: Cli, make_cells: MakeCells, admin_ctx: RequestContext, backend: Backend
) -> None:
    (cell,) = make_cells(1, disabled=True)
    CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=backend.url("cell0"),
        transport_url=NO_TRANSPORT_URL,
    )
    runs = [
        cli("update_cell", "--cell_uuid", cell.uuid, "--enable"),
        cli("update_cell", "--cell_uuid", cell.uuid, "--enable"),
        cli("update_cell", "--cell_uuid", cell.uuid, "--name", ""),
        cli("update_cell", "--cell_uuid", CELL0_UUID, "--enable"),
        cli("update_cell", "--cell_uuid", CELL0_UUID, "--transport-url", "fake://zzz/"),
        cli("update_cell", "--cell_uuid", CELL0_UUID, "--transport-url", NO_TRANSPORT_URL),
    ]
    assert codes(runs) == [0, 0, 0, 5, 2, 0], [r.output for r in runs]
    assert "updated: enabled" in runs[0].stdout and "disabled" not in runs[0].stdout
    assert "already enabled" in runs[1].stdout
    assert "nothing to update" in runs[2].stdout
    assert "cell0 has no message queue" in runs[4].stderr
    after = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    assert (after.disabled, after.name) == (False, cell.name)
    assert CellMapping.get_by_uuid(admin_ctx, CELL0_UUID).transport_url == NO_TRANSPORT_URL


def test_create_cell_takes_url_templates(
    cli: Cli, admin_ctx: RequestContext, backend: Backend
) -> None:
    """Templates are checked once filled from this host's config, as the library does."""
    db_template = backend.url("{path}-t1")  # {path}: the config's database (file) name
    runs = [
        cli(
            "create_cell",
            "--name",
            "t1",
            "--database_connection",
            db_template,
            "--transport-url",
            "{scheme}://{username}:{password}@{hostname}/t1",
        ),
        cli(
            "create_cell",
            "--name",
            "t2",
            "--database_connection",
            backend.url("t2"),
            "--transport-url",
            "{scheme}://{username}:{password}@{hostname}/{nosuchfield}",
        ),
    ]
    assert codes(runs) == [0, 1], [r.output for r in runs]
    assert "nosuchfield" in runs[1].stderr
    [cell] = CellMapping.get_all(admin_ctx)
    assert cell.transport_url_template == "{scheme}://{username}:{password}@{hostname}/t1"
    assert cell.database_connection_template == db_template
