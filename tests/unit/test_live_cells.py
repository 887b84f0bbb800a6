"""The live cell list: cached, checked against the cell generation at most every
``[cells]/refresh_interval``, reloaded when another process changed a cell.

"Another process" is the real ``cellrouter-manage`` script on the same SQLite
API database; the cells it changes are seen here without a restart, and the
connections of a changed or deleted cell are disposed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from cellrouter import exception, runtime
from cellrouter.across.scatter import scatter_gather_all_cells
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.db.api_schema import cell_generation, cell_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.db.database import api_engine
from cellrouter.index import cache_stats
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.index.store import STORE, MappingStore

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]
INTERVAL = 0.3


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per read of the whole cell list from the API database."""
    seen: list[int] = []
    real = MappingStore.cells

    def counting(self: MappingStore) -> list[CellMapping]:
        seen.append(1)
        return real(self)

    monkeypatch.setattr(MappingStore, "cells", counting)
    return seen


@pytest.fixture
def interval(conf: cfg.ConfigOpts) -> float:
    conf.set_override("refresh_interval", INTERVAL, group="cells")
    return INTERVAL


def behind_the_back(statement: sa.Executable, bump: bool = True) -> None:
    """A cell write made as another process would (``bump``: with the generation bump)."""
    with api_engine().begin() as conn:
        conn.execute(statement)
        if bump:
            conn.execute(
                sa.update(cell_generation).values(generation=cell_generation.c.generation + 1)
            )


def manage(api_db: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "manage.conf"
    config.write_text(f"[api_database]\nconnection = {api_db}\n")
    script = Path(sys.executable).with_name("cellrouter-manage")
    done = subprocess.run(
        [str(script), "--config-file", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def disposed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Registry keys (cell uuid, database URL, transport URL) whose connections were disposed."""
    seen: list[tuple[str, ...]] = []
    real = registry.CellConnection.dispose

    def spying(self: registry.CellConnection) -> None:
        seen.append(tuple(self.key))
        real(self)

    monkeypatch.setattr(registry.CellConnection, "dispose", spying)
    return seen


def test_the_list_is_read_once_and_a_local_write_is_seen_at_once(
    interval: float, make_cells: MakeCells, reads: list[int]
) -> None:
    first = make_cells(2)
    assert CellMapping.get_all(None) == first
    reads.clear()
    for _ in range(20):
        assert list(CACHED_INDEX.cells()) == first
    assert reads == []
    added = make_cells(1)  # a write in this process: no waiting for the interval
    assert CellMapping.get_all(None) == [*first, *added]
    assert reads == [1]


def test_another_process_is_seen_after_the_interval(
    interval: float, make_cells: MakeCells, reads: list[int]
) -> None:
    (cell,) = make_cells(1)
    assert CellMapping.get_by_uuid(None, cell.uuid).name == "cell1"
    before = cache_stats.stats().refreshes
    behind_the_back(sa.update(cell_mappings).values(name="renamed"))
    assert CellMapping.get_by_uuid(None, cell.uuid).name == "cell1"  # still trusted
    time.sleep(interval + 0.05)
    assert CellMapping.get_by_uuid(None, cell.uuid).name == "renamed"
    assert cache_stats.stats().refreshes == before + 1
    reads.clear()
    time.sleep(interval + 0.05)  # the generation did not move: checked, not read again
    assert CellMapping.get_by_uuid(None, cell.uuid).name == "renamed"
    assert reads == []


def test_update_cell_in_another_process_moves_requests_to_the_new_database(
    interval: float,
    api_db: str,
    tmp_path: Path,
    backend: Any,
    make_cells: MakeCells,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    disposed: list[tuple[str, ...]],
) -> None:
    (cell,) = make_cells(1)
    uuid = make_instance(cell, display_name="old home")

    def show() -> str:
        mapping = InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        assert mapping.cell_mapping is not None
        with target_cell(admin_ctx, mapping.cell_mapping) as cctx:
            return str(get_instance(cctx, uuid)["display_name"])

    assert show() == "old home"
    old_key = (cell.uuid, cell.database_connection, cell.transport_url)
    assert old_key in [tuple(c) for c in registry._by_key]
    new_db = backend.migrated("cell", "moved")
    engine = sa.create_engine(new_db, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.insert(instances).values(uuid=uuid, display_name="new home", deleted=0))
    engine.dispose()

    manage(
        api_db,
        tmp_path,
        "cell_v2",
        "update_cell",
        "--cell_uuid",
        cell.uuid,
        "--database_connection",
        new_db,
        "--disable",
    )
    time.sleep(interval + 0.05)
    CellMapping.get_all(None)  # any use of the list after the interval sees the change...
    assert old_key in disposed  # ...and disposes the old engine, before any request to it
    assert show() == "new home"
    assert [c.uuid for c in CellMapping.get_by_disabled(None, False)] == []  # left scheduling


def test_create_and_delete_cell_in_another_process(
    interval: float,
    api_db: str,
    tmp_path: Path,
    backend: Any,
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    disposed: list[tuple[str, ...]],
) -> None:
    (cell,) = make_cells(1)
    assert set(scatter_gather_all_cells(admin_ctx, lambda cctx: 1)) == {cell.uuid}
    created = manage(
        api_db,
        tmp_path,
        "cell_v2",
        "create_cell",
        "--name",
        "late",
        "--database_connection",
        backend.migrated("cell", "late"),
        "--transport-url",
        "fake://late/",
        "--verbose",
    )
    late_uuid = created.stdout.strip().split()[-1]
    time.sleep(interval + 0.05)
    assert set(scatter_gather_all_cells(admin_ctx, lambda cctx: 1)) == {cell.uuid, late_uuid}

    manage(api_db, tmp_path, "cell_v2", "delete_cell", "--cell_uuid", cell.uuid)
    time.sleep(interval + 0.05)
    assert set(scatter_gather_all_cells(admin_ctx, lambda cctx: 1)) == {late_uuid}
    assert cell.uuid in [key[0] for key in disposed]
    assert cell.uuid not in registry.cell_uuids()
    with pytest.raises(exception.CellMappingNotFound):
        CellMapping.get_by_uuid(admin_ctx, cell.uuid)


def test_a_cell_created_elsewhere_is_found_by_uuid_at_once(
    conf: cfg.ConfigOpts, make_cells: MakeCells
) -> None:
    conf.set_override("refresh_interval", 3600, group="cells")
    (cell,) = make_cells(1)
    CellMapping.get_all(None)
    behind_the_back(sa.update(cell_mappings).values(name="renamed"))
    # Not in the list: the generation is checked before saying "not found".
    with pytest.raises(exception.CellMappingNotFound):
        CellMapping.get_by_uuid(None, "00000000-0000-0000-0000-00000000abcd")
    assert CellMapping.get_by_uuid(None, cell.uuid).name == "renamed"


def test_reload_and_sighup(conf: cfg.ConfigOpts, make_cells: MakeCells) -> None:
    conf.set_override("refresh_interval", 3600, group="cells")
    (cell,) = make_cells(1)
    CellMapping.get_all(None)
    behind_the_back(sa.update(cell_mappings).values(name="one"), bump=False)
    assert CellMapping.get_by_uuid(None, cell.uuid).name == "cell1"
    runtime.reload()
    assert CellMapping.get_by_uuid(None, cell.uuid).name == "one"

    previous = signal.getsignal(signal.SIGHUP)
    chained: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, frame: chained.append(signum))
    try:
        runtime.reload_on_sighup()
        behind_the_back(sa.update(cell_mappings).values(name="two"), bump=False)
        os.kill(os.getpid(), signal.SIGHUP)
        assert CellMapping.get_by_uuid(None, cell.uuid).name == "two"
        assert chained == [signal.SIGHUP]  # the handler installed before still runs
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_an_unreachable_api_database_keeps_the_last_list(
    interval: float,
    make_cells: MakeCells,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cells = make_cells(2)
    assert CellMapping.get_all(None) == cells

    def down(self: MappingStore) -> int:
        raise exception.ApiDatabaseUnavailable(url="sqlite:///api.db", reason="gone")

    monkeypatch.setattr(MappingStore, "generation", down)
    caplog.set_level(logging.WARNING, logger="cellrouter.index.live_cells")
    for _ in range(3):
        time.sleep(interval + 0.02)
        assert CellMapping.get_all(None) == cells
    assert len([r for r in caplog.records if r.name == "cellrouter.index.live_cells"]) == 1


def test_the_first_read_fails_when_the_api_database_is_unreachable(
    conf: cfg.ConfigOpts, api_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(self: MappingStore) -> int:
        raise exception.ApiDatabaseUnavailable(url="sqlite:///api.db", reason="gone")

    monkeypatch.setattr(MappingStore, "generation", down)
    with pytest.raises(exception.ApiDatabaseUnavailable):
        CellMapping.get_all(None)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    CACHED_INDEX.reset()
    yield
    CACHED_INDEX.reset()
    assert STORE is not None
