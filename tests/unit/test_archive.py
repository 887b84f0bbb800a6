"""``db archive_deleted_rows`` and ``db purge`` on SQLite: three cells, batches, the API side."""

from __future__ import annotations

import datetime
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from archive_data import (
    ROWS_PER_INSTANCE,
    Cell,
    add_api_rows,
    api_rows,
    assert_archived_exactly_once,
    assert_live_untouched,
    placement,
    populate,
)
from backends import Backend

from cellrouter.cells.context import RequestContext
from cellrouter.conf import get_conf
from cellrouter.db import archive as archive_db
from cellrouter.db import cell_schema as cs
from cellrouter.exception import Invalid, InvalidMaxCount, InvalidValue
from cellrouter.index import mapping_store
from cellrouter.index.api import NewInstanceMapping
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.manage import archive, commands
from cellrouter.manage.results import InstanceState

MakeCells = Callable[..., list[CellMapping]]
SCRIPT = Path(sys.executable).with_name("cellrouter-manage")


def manage(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(SCRIPT), "--config-file", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def write_config(path: Path, api: str, database: str) -> Path:
    path.write_text(f"[api_database]\nconnection = {api}\n[database]\nconnection = {database}\n")
    return path


def deploy(cells: list[CellMapping], live: int, deleted: int) -> list[Cell]:
    """Populate and map every cell; build requests and request specs for every instance."""
    out = []
    for cell in cells:
        data = populate(cell.database_connection, live, deleted)
        uuids = data.live + data.deleted
        mapping_store().create_instances(cell, [NewInstanceMapping(u, "p") for u in uuids])
        out.append(data)
    return out


@pytest.fixture
def three(make_cells: MakeCells, api_db: str) -> tuple[list[CellMapping], list[Cell]]:
    cells = make_cells(3)
    data = deploy(cells, live=5, deleted=7)
    for d in data:
        add_api_rows(api_db, d.live + d.deleted)
    return cells, data


@pytest.fixture
def config(tmp_path: Path, api_db: str, backend: Backend) -> Path:
    return write_config(tmp_path / "c.conf", api_db, backend.migrated("cell", "local"))


def test_archive_all_cells_through_the_script_in_many_runs(
    three: tuple[list[CellMapping], list[Cell]], api_db: str, config: Path
) -> None:
    cells, data = three
    max_rows = ROWS_PER_INSTANCE * 2 + 1  # a run takes 3 instances: 7 runs and more
    codes, outputs = [], []
    for _ in range(30):
        run = manage(
            config,
            "db",
            "archive_deleted_rows",
            "--all-cells",
            "--verbose",
            "--max_rows",
            str(max_rows),
        )
        codes.append(run.returncode)
        outputs.append(run.stdout)
        assert run.stderr == ""
        if run.returncode == 0:
            break
    assert codes[-1] == 0 and set(codes[:-1]) == {1} and len(codes) > 7
    assert "Nothing was archived." in outputs[-1]
    first = outputs[0]
    assert "| Table" in first and "Number of Rows Archived" in first
    assert f"| {cells[0].name}.instances " in first
    assert "| API_DB.instance_mappings " in first and "| API_DB.request_specs " in first
    assert "\r" not in "".join(outputs)  # no progress line: stdout is not a terminal
    for d in data:
        assert_archived_exactly_once(d)
        assert api_rows(api_db, d.deleted) == dict.fromkeys(
            ["instance_mappings", "build_requests", "request_specs"], 0
        )
        assert api_rows(api_db, d.live) == dict.fromkeys(
            ["instance_mappings", "build_requests", "request_specs"], len(d.live)
        )
        with sa.create_engine(d.url).connect() as conn:
            pending = conn.execute(sa.select(sa.func.count()).select_from(cs.archive_unmaps))
            assert pending.scalar_one() == 0


def test_until_complete_uses_max_rows_as_batch_size(
    three: tuple[list[CellMapping], list[Cell]], api_db: str
) -> None:
    _, data = three
    batches: list[int] = []
    result = commands.archive_deleted_rows(
        max_rows=ROWS_PER_INSTANCE, until_complete=True, all_cells=True, progress=batches.append
    )
    assert result.archived and not result.failed
    assert len(batches) == 21  # one instance family per batch: 3 cells x 7
    assert batches == sorted(batches) and batches[-1] == result.total
    assert result.total == 21 * ROWS_PER_INSTANCE
    assert result.rows["API_DB.instance_mappings"] == 21
    assert result.rows["API_DB.build_requests"] == 21
    assert sum(n for k, n in result.rows.items() if k.endswith(".instances")) == 21
    for d in data:
        assert_archived_exactly_once(d)


def test_max_rows_is_a_total_over_cells(three: tuple[list[CellMapping], list[Cell]]) -> None:
    _, data = three
    result = commands.archive_deleted_rows(max_rows=ROWS_PER_INSTANCE * 8, all_cells=True)
    assert result.total == ROWS_PER_INSTANCE * 8  # whole families: 7 in one cell, 1 in the next
    left = [len(placement(d.url, d.deleted)["instances"][0]) for d in data]
    assert sorted(left) == [0, 6, 7]
    for d in data:
        assert_live_untouched(d)


def test_local_cell_only_without_all_cells(
    make_cells: MakeCells, api_db: str, backend: Backend
) -> None:
    (other,) = make_cells(1)
    local_url = backend.migrated("cell", "local")
    get_conf().set_override("connection", local_url, group="database")
    local = populate(local_url, 2, 3)
    remote = populate(other.database_connection, 2, 3)
    result = commands.archive_deleted_rows(until_complete=True)
    assert result.rows["instances"] == 3 and "cell1.instances" not in result.rows
    assert_archived_exactly_once(local)
    assert len(placement(remote.url, remote.deleted)["instances"][0]) == 3


def test_before_then_purge_before(make_cells: MakeCells, api_db: str, config: Path) -> None:
    (cell,) = make_cells(1)
    old = populate(cell.database_connection, 2, 3, deleted_at=datetime.datetime(2024, 1, 1))
    new = populate(cell.database_connection, 0, 4, deleted_at=datetime.datetime(2025, 6, 1))
    result = commands.archive_deleted_rows(
        until_complete=True, all_cells=True, before=archive.parse_before("2025-01-01")
    )
    assert result.rows["cell1.instances"] == 3
    assert_archived_exactly_once(old)
    assert len(placement(new.url, new.deleted)["instances"][0]) == 4  # still in main
    commands.archive_deleted_rows(until_complete=True, all_cells=True)  # the rest too

    run = manage(config, "db", "purge", "--all-cells", "--verbose", "--before", "2025-01-01")
    assert run.returncode == 0, run.stderr
    assert "Cell cell1(" in run.stdout
    assert "Deleted 3 rows from shadow_instances based on timestamp column deleted_at" in run.stdout
    after = placement(new.url, old.deleted + new.deleted)["instances"][1]
    assert len(after) == 4  # the newer ones stay in the shadow
    run = manage(config, "db", "purge", "--all-cells", "--before", "2025-01-01")
    assert run.returncode == 3 and run.stdout == ""  # nothing left that old
    run = manage(config, "db", "purge", "--all-cells", "--all")
    assert run.returncode == 0
    with sa.create_engine(cell.database_connection).connect() as conn:
        for table in cs.ARCHIVED_TABLES:
            count = sa.select(sa.func.count()).select_from(cs.shadow(table))
            assert conn.execute(count).scalar_one() == 0


def test_archive_with_purge(three: tuple[list[CellMapping], list[Cell]], config: Path) -> None:
    _, data = three
    run = manage(
        config,
        "db",
        "archive_deleted_rows",
        "--all-cells",
        "--until-complete",
        "--purge",
        "--verbose",
    )
    assert run.returncode == 1, run.stderr
    assert "Rows were archived, running purge..." in run.stdout
    assert "based on timestamp column (n/a)" in run.stdout
    for d in data:
        moved = placement(d.url, d.deleted)
        assert all(not main and not shadow for main, shadow in moved.values())
        assert_live_untouched(d)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["archive_deleted_rows", "--max_rows", "0"], 2, "--max_rows"),
        (["archive_deleted_rows", "--max_rows", "many"], 2, "--max_rows"),
        (["archive_deleted_rows", "--before", "someday"], 4, "--before"),
        (["purge"], 1, "Pass --before DATE or --all"),
        (["purge", "--before", "someday"], 2, "--before"),
    ],
)
def test_bad_input_exit_codes(config: Path, args: list[str], code: int, words: str) -> None:
    run = manage(config, "db", *args)
    assert run.returncode == code, run.stderr
    assert words in run.stderr and "Traceback" not in run.stderr


def test_api_database_unreachable_exits_3(tmp_path: Path, backend: Backend) -> None:
    missing = f"sqlite:///{tmp_path / 'no' / 'such' / 'api.db'}"
    config = write_config(tmp_path / "c.conf", missing, backend.migrated("cell", "x"))
    run = manage(config, "db", "archive_deleted_rows")
    assert run.returncode == 3 and "[api_database]/connection" in run.stderr
    assert manage(config, "db", "purge", "--all", "--all-cells").returncode == 4


def test_nothing_to_archive_exits_0_quietly(config: Path, make_cells: MakeCells) -> None:
    make_cells(1)
    run = manage(config, "db", "archive_deleted_rows", "--all-cells")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_crash_between_cell_and_api_is_finished_by_the_next_run(
    three: tuple[list[CellMapping], list[Cell]], api_db: str, admin_ctx: RequestContext
) -> None:
    cells, data = three
    engine = sa.create_engine(cells[0].database_connection)
    moved = archive_db.archive_batch(engine, cs.instances, ROWS_PER_INSTANCE * 2)
    (first, second) = moved.instance_uuids  # the cell committed; "killed" before the API
    assert commands.verify_instance(first).state is InstanceState.ARCHIVED
    never = str(uuidlib.uuid4())  # mapped, but in neither the table nor its shadow
    InstanceMapping.create(admin_ctx, instance_uuid=never, project_id="p", cell_mapping=cells[0])
    assert commands.verify_instance(never).state is InstanceState.MISSING
    assert archive_db.pending_unmaps(engine) == sorted([first, second])
    result = commands.archive_deleted_rows(max_rows=1, all_cells=True)
    assert result.rows["API_DB.instance_mappings"] >= 2
    assert commands.verify_instance(first).state is InstanceState.NOT_MAPPED
    assert archive_db.pending_unmaps(engine) == []
    commands.archive_deleted_rows(all_cells=True, until_complete=True)
    for d in data:
        assert_archived_exactly_once(d)
        assert api_rows(api_db, d.deleted)["instance_mappings"] == 0


def test_soft_deleted_rows_of_other_tables_are_archived_too(
    make_cells: MakeCells, api_db: str
) -> None:
    (cell,) = make_cells(1)
    with sa.create_engine(cell.database_connection).begin() as conn:
        conn.execute(
            sa.insert(cs.services),
            [{"id": 1, "host": "a", "deleted": 1}, {"id": 2, "host": "b", "deleted": 0}],
        )
    result = commands.archive_deleted_rows(all_cells=True)
    assert result.rows == {"cell1.services": 1}
    with sa.create_engine(cell.database_connection).connect() as conn:
        assert list(conn.execute(sa.select(cs.services.c.id)).scalars()) == [2]
        assert list(conn.execute(sa.select(cs.shadow(cs.services).c.id)).scalars()) == [1]


def test_parsers() -> None:
    assert archive.parse_max_rows(None) == 1000
    assert archive.parse_max_rows("5") == 5
    for bad in ("-1", "0", "x", str(2**31)):
        with pytest.raises(InvalidMaxCount):
            archive.parse_max_rows(bad)
    assert archive.parse_before("2025-01-02") == datetime.datetime(2025, 1, 2)
    assert archive.parse_before("2025-01-02 03:04:05") == datetime.datetime(2025, 1, 2, 3, 4, 5)
    assert archive.parse_before("Thu Jan  2 03:04:05 UTC 2025") == datetime.datetime(
        2025, 1, 2, 3, 4, 5
    )
    assert archive.parse_before("2025-01-02T03:04:05+01:00") == datetime.datetime(
        2025, 1, 2, 2, 4, 5
    )
    with pytest.raises(InvalidValue):
        archive.parse_before("yesterday-ish")
    with pytest.raises(Invalid):
        commands.purge()
