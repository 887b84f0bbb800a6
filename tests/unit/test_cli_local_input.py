"""``cellrouter-manage`` never exits 255 on bad local input, and a bad cell hurts only itself.

Through the real console script, on SQLite files (no servers: the MySQL URLs
point at 127.0.0.1:1, where nothing listens, so they fail at once). Bad local
input is the operator's to fix: arguments that are not UTF-8 exit 2, an
unusable config file or directory and an unreachable API database exit 1,
always in one line. ``db sync --all-cells`` and ``discover_hosts`` carry on
past a cell they cannot reach, report it once and exit non-zero. Every run is
checked for clear-text passwords.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cellrouter.cells.context import RequestContext
from cellrouter.db import migration
from cellrouter.db.cell_schema import compute_nodes
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping
from cellrouter.index.host_mapping import HostMapping

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")

SECRET = "S3cr3tpw"
#: nothing listens on port 1: the connection is refused at once
REFUSED_DB_URL = f"mysql+pymysql://root:{SECRET}@127.0.0.1:1/x?connect_timeout=2"


@dataclasses.dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        """The non-empty lines on stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    """Every run of the test; none may show the password."""
    done: list[Run] = []
    yield done
    for run in done:
        assert SECRET not in run.stdout + run.stderr, run


def manage(runs: list[Run], *argv: str | bytes | Path) -> Run:
    """Run the script; arguments may be bytes (not UTF-8). Output decoded leniently."""
    proc = subprocess.run(
        [str(SCRIPT), *argv],
        capture_output=True,
        timeout=120,
        check=False,
        # UTF-8 mode whatever this host's locale: argv is decoded as UTF-8 with
        # surrogateescape, as on every modern Linux
        env={**os.environ, "PYTHONUTF8": "1"},
    )
    assert b"\xe9" not in proc.stdout + proc.stderr, "raw bytes echoed"
    run = Run(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )
    assert "Traceback" not in run.stderr, run.stderr
    runs.append(run)
    return run


def write_config(path: Path, **sections: dict[str, str]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def config(api_db: str, tmp_path: Path) -> Path:
    """A usable config: the migrated SQLite API database of ``api_db``, a secret
    in the transport URL (it must never be printed)."""
    return write_config(
        tmp_path / "cellrouter.conf",
        DEFAULT={"transport_url": f"fake://u:{SECRET}@mq/"},
        api_database={"connection": api_db},
        database={"connection": sqlite_url(tmp_path / "local.db")},
    )


# -- arguments that are not UTF-8: 2 ------------------------------------------------------


def test_non_utf8_argument_exits_2_naming_its_position(
    runs: list[Run], config: Path, admin_ctx: RequestContext
) -> None:
    # Without the check this one got to the database and died on the
    # surrogate-escaped name with a UnicodeEncodeError: exit 255.
    run = manage(
        runs,
        "--config-file",
        config,
        "cell_v2",
        "create_cell",
        "--name",
        b"caf\xe9",
        "--database_connection",
        sqlite_url(config.with_name("new.db")),
        "--transport-url",
        "fake://new/",
    )
    assert run.code == 2, run
    assert run.errors == [
        "cellrouter-manage: error: argument 6 (the value of --name) is not valid UTF-8"
    ]
    assert run.stdout == ""
    assert CellMapping.get_all(admin_ctx) == []


def test_non_utf8_config_path_and_command_exit_2(runs: list[Run], config: Path) -> None:
    odd = config.parent / "caf\udce9.conf"  # a valid file under a name that is not UTF-8
    odd.write_bytes(config.read_bytes())
    by_path = manage(runs, "--config-file", bytes(odd), "cell_v2", "list_cells")
    by_command = manage(runs, "--config-file", config, "cell_v2", b"list_cells\xe9")
    assert (by_path.code, by_command.code) == (2, 2), [by_path, by_command]
    assert by_path.errors == [
        "cellrouter-manage: error: argument 2 (the value of --config-file) is not valid UTF-8"
    ]
    assert by_command.errors == ["cellrouter-manage: error: argument 4 is not valid UTF-8"]
    assert by_path.stdout == by_command.stdout == ""


# -- config files and directories that cannot be used: 1 -------------------------------------


def _missing(tmp: Path) -> Path:
    return tmp / "nope.conf"


def _directory(tmp: Path) -> Path:
    (tmp / "adir.conf").mkdir()
    return tmp / "adir.conf"


def _not_utf8(tmp: Path) -> Path:
    path = tmp / "latin1.conf"
    path.write_bytes(
        b"[api_database]\n# caf\xe9\nconnection = mysql+pymysql://root:"
        + SECRET.encode()
        + b"@h/x\n"
    )
    return path


def _symlink_loop(tmp: Path) -> Path:
    """Cannot be opened, even by root (ELOOP)."""
    (tmp / "loop.conf").symlink_to(tmp / "loop.conf")
    return tmp / "loop.conf"


def _no_permission(tmp: Path) -> Path:
    path = tmp / "secret.conf"
    path.write_text(f"[api_database]\nconnection = mysql+pymysql://root:{SECRET}@h/x\n")
    path.chmod(0)
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_missing, "no such file"),
        (_directory, "is a directory"),
        (_not_utf8, "is not valid UTF-8 (line 2)"),
        (_symlink_loop, "cannot be read"),
        pytest.param(
            _no_permission,
            "cannot be read (Permission denied)",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file"),
        ),
    ],
)
def test_unusable_config_file_exits_1_in_one_line(
    runs: list[Run], tmp_path: Path, config: Path, make: object, problem: str
) -> None:
    bad = make(tmp_path)  # type: ignore[operator]
    run = manage(runs, "--config-file", config, "--config-file", bad, "cell_v2", "list_cells")
    assert run.code == 1, run
    assert len(run.errors) == 1, run
    assert run.errors[0].startswith(f"Cannot use --config-file {bad}: {problem}")
    assert run.stdout == ""


def test_unusable_config_dir_exits_1_in_one_line(
    runs: list[Run], tmp_path: Path, config: Path
) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-ok.conf").write_text("[cells]\n")
    (conf_d / "20-bad.conf").write_bytes(b"[cells]\n\n# \xe9\n")
    (conf_d / "30-ignored.txt").write_bytes(b"\xe9")  # not *.conf: oslo.config skips it
    ok_d = tmp_path / "ok.d"
    ok_d.mkdir()
    (ok_d / "x.txt").write_bytes(b"\xe9")

    base = ("--config-file", config)
    works = manage(runs, *base, "--config-dir", ok_d, "cell_v2", "list_cells")
    assert works.code == 0, works
    cases = {
        # a file where a directory belongs: oslo.config silently skipped it
        config: f"Cannot use --config-dir {config}: not a directory.",
        tmp_path / "nodir": f"Cannot use --config-dir {tmp_path / 'nodir'}: no such directory.",
        conf_d: f"Cannot use --config-dir {conf_d}: 20-bad.conf is not valid UTF-8 (line 3).",
    }
    for path, line in cases.items():
        run = manage(runs, *base, "--config-dir", path, "cell_v2", "list_cells")
        assert (run.code, run.errors, run.stdout) == (1, [line], ""), run


# -- the API database cannot be reached: 1 -------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [("cell_v2", "list_cells"), ("cell_v2", "discover_hosts"), ("db", "sync", "--all-cells")],
)
def test_unreachable_api_database_exits_1_naming_the_option(
    runs: list[Run], tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Needs the library to raise ApiDatabaseUnavailable for [api_database]/connection."""
    config = write_config(tmp_path / "refused.conf", api_database={"connection": REFUSED_DB_URL})
    run = manage(runs, "--config-file", config, *command)
    assert run.code == 1, run
    assert len(run.errors) == 1, run
    assert "[api_database]/connection" in run.errors[0]
    assert SECRET not in run.stdout + run.stderr


# -- a bad cell hurts only itself ------------------------------------------------------------


def _bad_cells(ctx: RequestContext, tmp_path: Path) -> list[CellMapping]:
    """Two cells that cannot be reached: SQLite in a missing directory, MySQL refused."""
    return [
        CellMapping.create(
            ctx,
            name="nodir",
            database_connection=sqlite_url(tmp_path / "missing-dir" / "cell.db"),
            transport_url="fake://nodir/",
        ),
        CellMapping.create(
            ctx,
            name="refused",
            database_connection=REFUSED_DB_URL,
            transport_url=f"fake://u:{SECRET}@refused/",
        ),
    ]


def _reported_once(run: Run, cells: list[CellMapping]) -> None:
    """One stderr line per failing cell, and its uuid nowhere else."""
    assert len(run.errors) == len(cells), run.stderr
    for cell in cells:
        assert (run.stdout + run.stderr).count(cell.uuid) == 1, (cell.name, run)
        assert sum(cell.uuid in line for line in run.errors) == 1


def test_db_sync_all_cells_carries_on_past_bad_cells(
    runs: list[Run], config: Path, admin_ctx: RequestContext, tmp_path: Path
) -> None:
    head = migration.head("cell")
    cell0 = CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=sqlite_url(tmp_path / "cell0.db"),
        transport_url="none:///",
    )
    bad = _bad_cells(admin_ctx, tmp_path)
    late = CellMapping.create(  # mapped after the bad ones: still migrated
        admin_ctx,
        name="late",
        database_connection=sqlite_url(tmp_path / "late.db"),
        transport_url="fake://late/",
    )
    run = manage(runs, "--config-file", config, "db", "sync", "--all-cells")
    assert run.code == 255, run
    assert f"cell {cell0.identity}: base -> {head}" in run.stdout
    assert f"cell {late.identity}: base -> {head}" in run.stdout
    assert run.stdout.splitlines()[-1] == "2 cell(s) migrated, 2 failed."
    _reported_once(run, bad)
    assert all("unavailable" in line for line in run.errors)
    assert "nodir(" in run.stderr and "refused(" in run.stderr
    assert migration.version("cell", late.database_connection) == head

    # only good cells left: 0, and every cell said "already at"
    for cell in bad:
        _unmap(cell)
    again = manage(runs, "--config-file", config, "db", "sync", "--all-cells")
    assert again.code == 0, again
    assert again.errors == []
    assert again.stdout.splitlines()[-1] == "2 cell(s) migrated, 0 failed."


def _unmap(cell: CellMapping) -> None:
    from cellrouter.db.api_schema import cell_mappings
    from cellrouter.db.database import api_engine

    with api_engine().begin() as conn:
        conn.execute(sa.delete(cell_mappings).where(cell_mappings.c.uuid == cell.uuid))


def test_discover_hosts_carries_on_and_reports_each_bad_cell_once(
    runs: list[Run], config: Path, admin_ctx: RequestContext, tmp_path: Path
) -> None:
    nodir, refused = _bad_cells(admin_ctx, tmp_path)
    good_url = sqlite_url(tmp_path / "good.db")
    migration.sync("cell", good_url)
    engine = sa.create_engine(good_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(compute_nodes),
            [{"host": "h1", "hypervisor_hostname": "h1-node", "mapped": False}],
        )
    engine.dispose()
    good = CellMapping.create(
        admin_ctx, name="good", database_connection=good_url, transport_url="fake://good/"
    )

    run = manage(runs, "--config-file", config, "cell_v2", "discover_hosts", "--verbose")
    assert run.code == 255, run
    assert f"Host h1 mapped to cell {good.uuid}." in run.stdout
    assert run.stdout.splitlines()[-1] == "1 new host(s) mapped; 1 cell(s) scanned, 2 failed."
    _reported_once(run, [nodir, refused])
    assert all(line.startswith("Skipped: Cell ") for line in run.errors), run.errors
    assert {m.host: m.cell_mapping.uuid for m in HostMapping.get_all(admin_ctx)} == {
        "h1": good.uuid
    }


# -- every code is documented ------------------------------------------------------------------


def test_help_documents_the_codes(runs: list[Run]) -> None:
    top = " ".join(manage(runs, "--help").stdout.split())
    assert "not valid UTF-8" in top and "API database" in top and "config file" in top
    db_sync = manage(runs, "db", "sync", "--help").stdout
    assert "255 a cell's database could not be reached" in db_sync
    discover = manage(runs, "cell_v2", "discover_hosts", "--help").stdout
    assert "255 a cell could not be read" in discover
    for command in (("api_db", "version"), ("cell_v2", "list_cells"), ("db", "sync")):
        text = " ".join(manage(runs, *command, "--help").stdout.split())
        assert "1 a cellrouter error (a config file or directory that cannot be used" in text
        assert "2 bad arguments (not valid UTF-8 included)" in text
