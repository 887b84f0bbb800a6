"""nova-manage parity of ``cellrouter-manage`` on SQLite, through the real script.

``db sync`` migrates cell0 too (``--local_cell``: not), ``cell_v2 status``
compares each cell's schema with the head, ``simple_cell_setup`` carries on
past a cell0 schema failure, ``list_hosts`` sorts by host name,
``create_cell``/``update_cell`` warn, and API database errors name
``[api_database]/connection``. Rows are read straight from the databases
(never through this process's caches) before and after each run.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from backends import execute

from cellrouter.cells.context import RequestContext
from cellrouter.db import migration
from cellrouter.db.api_schema import cell_mappings, host_mappings, instance_mappings
from cellrouter.db.cell_schema import compute_nodes, instances
from cellrouter.index.cell_mapping import CELL0_UUID, NO_TRANSPORT_URL, CellMapping
from cellrouter.index.host_mapping import HostMapping

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")
MakeCells = Callable[..., list[CellMapping]]


def manage(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--config-file", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def manage_many(config: Path, *commands: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at once (results in order)."""
    with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: manage(config, *args), commands))


def write_config(path: Path, api: str, local: str) -> Path:
    path.write_text(
        "[DEFAULT]\ntransport_url = fake://local/\n"
        f"[api_database]\nconnection = {api}\n[database]\nconnection = {local}\n"
    )
    return path


def cells_in(api: str) -> dict[str, str]:
    """uuid -> database URL of every cell mapping, read from the API database."""
    stmt = sa.select(cell_mappings.c.uuid, cell_mappings.c.database_connection)
    return dict(execute(api, stmt))


def hosts_in(api: str) -> dict[str, int]:
    return dict(execute(api, sa.select(host_mappings.c.host, host_mappings.c.cell_id)))


def table_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("| ")][1:]


@pytest.fixture
def local_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'nova.db'}"
    migration.sync("cell", url)
    return url


@pytest.fixture
def config(tmp_path: Path, api_db: str, local_db: str) -> Path:
    return write_config(tmp_path / "cellrouter.conf", api_db, local_db)


# -- db sync --------------------------------------------------------------------------


def test_db_sync_migrates_cell0_unless_local_cell(
    tmp_path: Path, api_db: str, admin_ctx: RequestContext
) -> None:
    local = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = write_config(tmp_path / "fresh.conf", api_db, local)
    head = migration.head("cell")
    cell0_file = tmp_path / "cell0.db"

    unmapped = manage(config, "db", "sync")
    assert unmapped.returncode == 0, unmapped.stderr
    assert unmapped.stdout.splitlines() == [f"cell database: base -> {head} ({local})"]
    assert unmapped.stderr.splitlines() == ["WARNING: cell0: not migrated: cell0 is not mapped"]

    CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=f"sqlite:///{cell0_file}",
        transport_url=NO_TRANSPORT_URL,
    )
    migration.sync("cell", local, "base")
    local_only = manage(config, "db", "sync", "--local_cell")
    assert local_only.returncode == 0 and local_only.stderr == "", local_only.stderr
    assert local_only.stdout.splitlines() == [f"cell database: base -> {head} ({local})"]
    assert migration.version("cell", f"sqlite:///{cell0_file}") is None  # not touched
    both, conflict = manage_many(
        config, ["db", "sync"], ["db", "sync", "--local_cell", "--all-cells"]
    )
    assert both.returncode == 0 and both.stderr == "", both.stderr
    assert both.stdout.splitlines() == [
        f"cell cell0({CELL0_UUID}): base -> {head} (sqlite:///{cell0_file})",
        f"cell database: already at {head} ({local})",
    ]
    assert migration.version("cell", f"sqlite:///{cell0_file}") == head
    assert conflict.returncode == 2 and "--local_cell" in conflict.stderr


def test_db_sync_stops_at_an_unreachable_cell0_as_nova(
    tmp_path: Path, api_db: str, admin_ctx: RequestContext
) -> None:
    local = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = write_config(tmp_path / "fresh.conf", api_db, local)
    CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=f"sqlite:///{tmp_path / 'no-dir' / 'cell0.db'}",
        transport_url=NO_TRANSPORT_URL,
    )
    run = manage(config, "db", "sync")
    assert run.returncode == 255 and run.stdout == "", run
    assert f"Cell cell0({CELL0_UUID}) is unavailable" in run.stderr
    assert migration.version("cell", local) is None  # nova-manage: nothing after cell0


# -- status -----------------------------------------------------------------------------


def test_status_reports_schema_against_the_head(
    config: Path, make_cells: MakeCells, make_instance: Callable[..., str], tmp_path: Path
) -> None:
    head = migration.head("cell")
    older = sorted(migration.revisions("cell") - {head})[0]
    current, behind, empty = make_cells(3)
    execute(current.database_connection, sa.insert(compute_nodes).values(host="h1"))
    make_instance(current)
    make_instance(current, deleted=1)
    ok = manage(config, "cell_v2", "status")
    assert ok.returncode == 0, ok.stdout + ok.stderr

    migration.sync("cell", behind.database_connection, older)
    migration.sync("cell", empty.database_connection, "base")
    bad, verbose = manage_many(config, ["cell_v2", "status"], ["cell_v2", "status", "--verbose"])
    assert (bad.returncode, verbose.returncode) == (2, 2), bad.stdout + bad.stderr
    lines = {line.split("|")[1].strip(): line for line in table_lines(bad.stdout)}
    assert "| ok " in lines["cell1"]
    assert f"| behind (rev {older}, head {head}) |" in lines["cell2"]
    assert "| no schema " in lines["cell3"]
    assert f"2 cell(s) not at the cell schema head {head}." in bad.stdout
    assert "compute host(s)" not in bad.stdout
    assert (
        f"{current.identity}: 1 compute host(s) and 1 live instance(s) in its database; "
        "0 host mapping(s) and 2 instance mapping(s)."  # the deleted one's is still there
    ) in verbose.stdout, verbose.stdout
    assert "Mapping cache: memory, answers. This process: " in verbose.stdout
    assert "Mapping cache" not in bad.stdout


def test_status_verbose_says_when_the_mapping_cache_does_not_answer(
    config: Path, make_cells: MakeCells
) -> None:
    make_cells(1)
    with config.open("a") as f:  # nothing listens on port 1: refused at once
        f.write("[cache]\nbackend = memcached\nbackend_argument = url:127.0.0.1:1\n")
    run = manage(config, "cell_v2", "status", "--verbose")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Mapping cache: memcached, does not answer (" in run.stdout, run.stdout
    assert "backend error(s)" in run.stdout


def test_status_unreachable_wins_over_schema(
    config: Path, make_cells: MakeCells, admin_ctx: RequestContext, tmp_path: Path
) -> None:
    (cell,) = make_cells(1)
    migration.sync("cell", cell.database_connection, "base")
    CellMapping.create(
        admin_ctx,
        name="gone",
        database_connection=f"sqlite:///{tmp_path / 'no-dir' / 'gone.db'}",
        transport_url="fake://gone/",
    )
    run = manage(config, "cell_v2", "status")
    assert run.returncode == 1, run.stdout + run.stderr
    gone = next(line for line in table_lines(run.stdout) if line.startswith("| gone "))
    assert "UNREACHABLE" in gone and "| - " in gone


# -- simple_cell_setup ------------------------------------------------------------------


def test_simple_cell_setup_carries_on_past_a_cell0_schema_failure(
    config: Path, api_db: str, local_db: str, admin_ctx: RequestContext, tmp_path: Path
) -> None:
    bad_cell0 = f"sqlite:///{tmp_path / 'no-dir' / 'cell0.db'}"
    CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=bad_cell0,
        transport_url=NO_TRANSPORT_URL,
    )
    execute(local_db, sa.insert(compute_nodes).values(host="c1"))
    instance = str(uuidlib.uuid4())
    execute(local_db, sa.insert(instances).values(uuid=instance, project_id="p", host="c1"))
    assert cells_in(api_db) == {CELL0_UUID: bad_cell0}

    run = manage(config, "cell_v2", "simple_cell_setup")
    assert run.returncode == 0, run.stdout + run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith(f"Unable to sync the cell0 schema ({bad_cell0}): Cell cell0(")
    assert "schema NOT MIGRATED" in run.stdout
    after = cells_in(api_db)
    [cell_uuid] = set(after) - {CELL0_UUID}
    assert after[cell_uuid] == local_db
    [cell_id] = execute(
        api_db, sa.select(cell_mappings.c.id).where(cell_mappings.c.uuid == cell_uuid)
    )
    assert hosts_in(api_db) == {"c1": cell_id[0]}
    mapped = execute(
        api_db, sa.select(instance_mappings.c.instance_uuid, instance_mappings.c.cell_id)
    )
    assert [tuple(row) for row in mapped] == [(instance, cell_id[0])]


# -- list_hosts -------------------------------------------------------------------------


def test_list_hosts_sorted_by_host_name_whatever_the_cell(
    config: Path, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    first, second = make_cells(2)
    for host, cell in (("zeta", first), ("alpha", second), ("mid", first)):
        HostMapping.create(admin_ctx, host=host, cell_mapping=cell)
    run = manage(config, "cell_v2", "list_hosts")
    assert run.returncode == 0, run.stderr
    hosts = [line.split("|")[3].strip() for line in table_lines(run.stdout)]
    assert hosts == ["alpha", "mid", "zeta"]


# -- create_cell / update_cell warnings ------------------------------------------------


def test_create_and_update_cell_warn_but_exit_as_before(
    config: Path, api_db: str, make_cells: MakeCells, tmp_path: Path
) -> None:
    (cell1,) = make_cells(1)
    nodir = f"sqlite:///{tmp_path / 'no-dir' / 'x.db'}"
    fine = f"sqlite:///{tmp_path / 'new.db'}"  # SQLite creates it: no warning
    before = cells_in(api_db)
    same_name, quiet = manage_many(
        config,
        ["cell_v2", "create_cell", "--name", "cell1", "--database_connection", nodir,
         "--transport-url", "fake://dup/", "--verbose"],
        ["cell_v2", "create_cell", "--name", "other", "--database_connection", fine,
         "--transport-url", "fake://other/"],
    )  # fmt: skip
    assert (same_name.returncode, quiet.returncode) == (0, 0), same_name.stderr + quiet.stderr
    assert quiet.stderr == ""
    new_uuid = same_name.stdout.strip()
    warnings = same_name.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("WARNING: ") for w in warnings)
    assert f"cell {cell1.identity} has the same name" in warnings[0]
    assert "its database cannot be reached: directory" in warnings[1]
    after = cells_in(api_db)
    assert after[new_uuid] == nodir and len(after) == len(before) + 2  # both created

    run = manage(
        config, "cell_v2", "update_cell", "--cell_uuid", cell1.uuid,
        "--name", "other", "--database_connection", nodir.replace("x.db", "y.db"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "updated: name, database_connection" in run.stdout
    assert [w.split(":")[0] for w in run.stderr.splitlines()] == ["WARNING", "WARNING"]
    assert "has the same name" in run.stderr and "database cannot be reached" in run.stderr
    assert cells_in(api_db)[cell1.uuid] == nodir.replace("x.db", "y.db")


# -- API database errors ------------------------------------------------------------------


def test_api_database_errors_name_the_option(tmp_path: Path, local_db: str) -> None:
    unsynced = f"sqlite:///{tmp_path / 'unsynced-api.db'}"
    config = write_config(tmp_path / "unsynced.conf", unsynced, local_db)
    runs = manage_many(
        config,
        ["cell_v2", "list_cells"],
        ["cell_v2", "create_cell", "--name", "x"],
        ["db", "sync"],
    )
    for run in runs:
        assert run.returncode == 1, run.stderr
        assert run.stderr.startswith(f"The API database ([api_database]/connection = {unsynced})")
    assert "Has api_db sync been run?" in runs[2].stderr


def test_simple_cell_setup_with_an_unreachable_local_database_exits_4(
    tmp_path: Path, api_db: str
) -> None:
    config = write_config(tmp_path / "bad.conf", api_db, "sqlite:////nonexistent/dir/x.db")
    run = manage(config, "cell_v2", "simple_cell_setup")
    assert run.returncode == 4, run.stdout + run.stderr
    assert "[database]/connection" in run.stderr and cells_in(api_db) == {}
