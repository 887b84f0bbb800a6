"""``cellrouter-manage api_db``/``db`` and the CLI's shared error handling, via the script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cellrouter.db import migration

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")


def manage(config: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(SCRIPT)]
    if config is not None:
        argv += ["--config-file", str(config)]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120, check=False)


def write_config(path: Path, **sections: dict[str, str]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "cellrouter.conf",
        api_database={"connection": f"sqlite:///{tmp_path / 'api.db'}"},
        database={"connection": f"sqlite:///{tmp_path / 'cell.db'}"},
    )


def test_api_db_sync_version_and_back_to_base(config: Path, tmp_path: Path) -> None:
    api_url = f"sqlite:///{tmp_path / 'api.db'}"
    head = migration.head("api")
    assert manage(config, "api_db", "version").stdout.strip() == "base"
    run = manage(config, "api_db", "sync")
    assert run.returncode == 0 and f"base -> {head}" in run.stdout
    assert migration.version("api", api_url) == head
    run = manage(config, "api_db", "sync")
    assert run.returncode == 0 and f"already at {head}" in run.stdout
    assert manage(config, "api_db", "version").stdout.strip() == head
    run = manage(config, "api_db", "sync", "base")
    assert run.returncode == 0 and f"{head} -> base" in run.stdout
    assert migration.version("api", api_url) is None


def test_db_sync_local_and_all_cells(config: Path, tmp_path: Path) -> None:
    head = migration.head("cell")
    run = manage(config, "db", "sync", "--local_cell")  # no API database yet: cell0 not looked up
    assert run.returncode == 0, run.stderr
    assert f"cell database: base -> {head} (sqlite:///{tmp_path / 'cell.db'})" in run.stdout
    assert manage(config, "db", "version").stdout.strip() == head
    # --all-cells: every mapped cell, cell0 included
    assert manage(config, "api_db", "sync").returncode == 0
    assert manage(config, "cell_v2", "map_cell0").returncode == 0
    run = manage(config, "db", "sync", "--all-cells")
    assert run.returncode == 0, run.stderr
    assert f"cell cell0(00000000-0000-0000-0000-000000000000): base -> {head}" in run.stdout
    assert (tmp_path / "cell_cell0.db").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("api_db", "sync"), "[api_database]/connection"),
        (("api_db", "version"), "[api_database]/connection"),
        (("db", "sync"), "[database]/connection"),
        (("db", "version"), "[database]/connection"),
    ],
)
def test_missing_connection_names_the_option(
    tmp_path: Path, args: tuple[str, ...], option: str
) -> None:
    empty = write_config(tmp_path / "empty.conf", DEFAULT={})
    run = manage(empty, *args)
    assert run.returncode == 1
    assert option in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert run.stdout == ""


def test_unknown_revision_is_a_clear_error(config: Path) -> None:
    run = manage(config, "db", "sync", "--local_cell", "no_such_rev")
    assert run.returncode == 1
    assert "Unknown cell schema revision 'no_such_rev'" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("group", "command", "option"),
    [
        ("api_database", ("api_db", "version"), "[api_database]/connection"),
        ("api_database", ("api_db", "sync"), "[api_database]/connection"),
        ("database", ("db", "version"), "[database]/connection"),
        ("database", ("db", "sync"), "[database]/connection"),
    ],
)
def test_unreachable_database_is_one_line_exit_1_naming_the_option_debug_adds_traceback(
    tmp_path: Path, group: str, command: tuple[str, str], option: str
) -> None:
    secret = "Pa55w0rdXyz"
    broken = write_config(
        tmp_path / "broken.conf",
        # nothing listens on port 1: refused at once
        **{group: {"connection": f"mysql+pymysql://root:{secret}@127.0.0.1:1/x"}},
    )
    run = manage(broken, *command)
    assert run.returncode == 1, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert option in run.stderr and "root:****@127.0.0.1:1" in run.stderr
    assert secret not in run.stderr
    run = manage(broken, "--debug", *command)
    assert run.returncode == 1
    assert "Traceback" in run.stderr and secret not in run.stderr


def test_missing_config_file_and_bad_arguments(tmp_path: Path) -> None:
    run = manage(tmp_path / "nope.conf", "api_db", "version")
    assert run.returncode == 1 and "nope.conf" in run.stderr
    run = manage(None, "api_db", "frobnicate")
    assert run.returncode == 2 and "usage:" in run.stderr
    run = manage(None, "db", "sync", "--bogus")
    assert run.returncode == 2


def test_db_sync_all_cells_reports_each_cell_and_names_the_failing_one(
    config: Path, tmp_path: Path
) -> None:
    from cellrouter import conf as cr_conf
    from cellrouter.cells.context import get_admin_context
    from cellrouter.index.cell_mapping import CellMapping

    assert manage(config, "api_db", "sync").returncode == 0
    assert manage(config, "cell_v2", "map_cell0").returncode == 0
    cr_conf.setup(["--config-file", str(config)])
    try:
        CellMapping.create(
            get_admin_context(),
            name="broken",
            # a directory that does not exist: SQLite cannot open the file
            database_connection=f"sqlite:///{tmp_path / 'missing' / 'broken.db'}",
            transport_url="fake://broken/",
        )
    finally:
        cr_conf.setup([], default_config_files=[])
    run = manage(config, "db", "sync", "--all-cells")
    assert run.returncode == 255, run.stderr  # a cell that cannot be reached: not bad input
    assert "cell cell0(00000000-0000-0000-0000-000000000000): base -> " in run.stdout
    assert "Cell broken(" in run.stderr and "unavailable" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
