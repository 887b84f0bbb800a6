"""``db archive_deleted_rows --all-cells`` on MariaDB: SIGKILL then rerun, and two runs at once.

Three cells with soft-deleted instances (and every kind of child row)
between live ones; the real ``cellrouter-manage`` script runs as a
subprocess. Whatever happens, every row of a deleted instance is in exactly
one of main and shadow, no live row moves, and the instance mappings go only
for archived instances.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from archive_data import (
    Cell,
    add_api_rows,
    api_rows,
    assert_archived_exactly_once,
    assert_in_exactly_one,
    assert_live_untouched,
)
from archive_data import populate as populate_cell
from oslo_config import cfg

from cellrouter.db import cell_schema as cs
from cellrouter.db import migration
from cellrouter.index import mapping_store
from cellrouter.index.api import NewInstanceMapping

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")
LIVE, DELETED = 300, 700


def deploy(
    conf: cfg.ConfigOpts, mysql_db_factory: Callable[..., str], tmp_path: Path
) -> tuple[Path, str, list[Cell]]:
    api = mysql_db_factory("arch_api")
    migration.sync("api", api)
    conf.set_override("connection", api, group="api_database")
    cells = []
    for n in range(1, 4):
        url = mysql_db_factory(f"arch_cell{n}")
        migration.sync("cell", url)
        cell = mapping_store().create_cell(
            name=f"cell{n}", database_connection=url, transport_url=f"fake://cell{n}/"
        )
        data = populate_cell(url, LIVE, DELETED)
        mapping_store().create_instances(
            cell, [NewInstanceMapping(u, "p") for u in data.live + data.deleted]
        )
        add_api_rows(api, data.live + data.deleted)
        cells.append(data)
    config = tmp_path / "c.conf"
    config.write_text(f"[api_database]\nconnection = {api}\n")
    return config, api, cells


def archive_command(config: Path, *extra: str) -> list[str]:
    return [
        str(SCRIPT),
        "--config-file",
        str(config),
        "db",
        "archive_deleted_rows",
        "--all-cells",
        "--until-complete",
        "--max_rows",
        "60",
        *extra,
    ]


def shadow_count(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            table = cs.shadow(cs.instances)
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    finally:
        engine.dispose()


def check_final(api: str, cells: list[Cell]) -> None:
    for data in cells:
        assert_archived_exactly_once(data)
        assert api_rows(api, data.deleted) == dict.fromkeys(
            ["instance_mappings", "build_requests", "request_specs"], 0
        )
        assert api_rows(api, data.live)["instance_mappings"] == LIVE


def test_sigkill_mid_run_then_rerun(
    conf: cfg.ConfigOpts, mysql_db_factory: Callable[..., str], tmp_path: Path
) -> None:
    config, api, cells = deploy(conf, mysql_db_factory, tmp_path)
    proc = subprocess.Popen(archive_command(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while shadow_count(cells[1].url) < 50 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    for data in cells:  # mid-run: nothing lost, nothing doubled, nothing live moved
        assert_in_exactly_one(data)
        assert_live_untouched(data)
    assert 0 < shadow_count(cells[1].url) < DELETED  # killed in the middle of cell2
    rerun = subprocess.run(archive_command(config), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stderr
    check_final(api, cells)
    again = subprocess.run(archive_command(config), capture_output=True, text=True, timeout=600)
    assert (again.returncode, again.stderr) == (0, "")


def test_two_runs_at_once(
    conf: cfg.ConfigOpts, mysql_db_factory: Callable[..., str], tmp_path: Path
) -> None:
    config, api, cells = deploy(conf, mysql_db_factory, tmp_path)
    command = archive_command(config, "--verbose")
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode in (0, 1), err
        assert err == "", err
    check_final(api, cells)
    archived = 0  # the runs' own counts: every instance archived by exactly one of them
    for out, _ in outputs:
        for line in out.splitlines():
            cells_ = [c.strip() for c in line.strip("|").split("|")]
            if len(cells_) == 2 and cells_[0].endswith(".instances"):
                archived += int(cells_[1])
    assert archived == 3 * DELETED
