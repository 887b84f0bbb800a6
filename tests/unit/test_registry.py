"""The per-process connection registry: one engine per cell, replaced when URLs change."""

from __future__ import annotations

import dataclasses
import json
import os
import select
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from cellrouter import exception
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.db import database, migration
from cellrouter.db.api_schema import cell_mappings
from cellrouter.db.engine import create_engine as real_create_engine
from cellrouter.index.cell_mapping import CellMapping

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]

THREADS = 16


class DisposeSpy:
    """Wraps ``engine.dispose`` and counts the calls (the real dispose still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, engine: sa.Engine) -> None:
        self.calls = 0
        original = engine.dispose

        def dispose(*args: Any, **kwargs: Any) -> None:
            self.calls += 1
            original(*args, **kwargs)

        monkeypatch.setattr(engine, "dispose", dispose)


@pytest.fixture
def counted_engines(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the engines the registry builds, per URL; building is slowed down a little
    so that racing first callers really overlap."""
    built: Counter[str] = Counter()
    lock = threading.Lock()

    def create_engine(url: Any, **kwargs: Any) -> sa.Engine:
        with lock:
            built[str(url)] += 1
        time.sleep(0.02)
        return real_create_engine(url, **kwargs)

    monkeypatch.setattr(registry, "create_engine", create_engine)
    return built


def run_together(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``count`` threads released at the same instant by a Barrier."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = fn(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


def migrated_sqlite(tmp_path: Path, name: str) -> str:
    url = f"sqlite:///{tmp_path / name}"
    migration.sync("cell", url)
    return url


# -- one engine per cell -------------------------------------------------------------


def test_concurrent_first_callers_share_one_engine(
    make_cells: MakeCells, admin_ctx: RequestContext, counted_engines: Counter[str]
) -> None:
    (cell,) = make_cells(1)

    def first_call(_: int) -> tuple[registry.CellConnection, sa.Engine]:
        with target_cell(admin_ctx, cell) as cctx:
            return registry.get(cell), cctx.engine

    results = run_together(THREADS, first_call)
    assert counted_engines == {cell.database_connection: 1}
    assert len({id(conn) for conn, _ in results}) == 1
    assert len({id(engine) for _, engine in results}) == 1
    assert registry.cell_uuids() == [cell.uuid]


def test_concurrent_first_callers_of_several_cells(
    make_cells: MakeCells, counted_engines: Counter[str]
) -> None:
    cells = make_cells(4)

    def first_call(index: int) -> registry.CellConnection:
        return registry.get(cells[index % len(cells)])

    results = run_together(THREADS, first_call)
    assert counted_engines == {cell.database_connection: 1 for cell in cells}
    for index, conn in enumerate(results):
        assert conn is registry.get(cells[index % len(cells)])
    assert sorted(registry.cell_uuids()) == sorted(cell.uuid for cell in cells)


def test_connection_carries_the_cells_urls(make_cells: MakeCells) -> None:
    (cell,) = make_cells(1)
    conn = registry.get(cell)
    assert conn.cell_uuid == cell.uuid
    assert conn.transport_url == cell.transport_url
    assert conn.engine.url.database == sa.make_url(cell.database_connection).database
    assert conn.identity == cell.identity


# -- URL changes ---------------------------------------------------------------------


def test_url_change_via_update_gives_a_new_engine_and_disposes_the_old(
    make_cells: MakeCells,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cell, other = make_cells(2)
    new_url = migrated_sqlite(tmp_path, "moved.db")
    moved_instance = make_instance(cell, mapped=False)

    old_conn = registry.get(cell)
    old_engine = old_conn.engine
    with old_engine.connect() as conn:  # put a connection in the pool
        conn.execute(sa.text("select 1"))
    old_pool = old_engine.pool
    assert old_pool.checkedin() == 1
    spy = DisposeSpy(monkeypatch, old_engine)
    other_conn = registry.get(other)

    updated = cell.update(admin_ctx, database_connection=new_url)

    assert spy.calls == 1
    assert old_engine.pool is not old_pool  # the pooled connection was dropped
    new_conn = registry.get(updated)
    assert new_conn is not old_conn
    assert new_conn.engine is not old_engine
    assert new_conn.engine.url.database == str(tmp_path / "moved.db")
    with target_cell(admin_ctx, updated) as cctx:
        assert cctx.engine is new_conn.engine
        assert cctx.engine.url.database == str(tmp_path / "moved.db")
        # the new database: the instance of the old one is not there
        with pytest.raises(Exception, match=moved_instance):
            get_instance(cctx, moved_instance)
    # Only the changed cell was touched.
    assert registry.get(other) is other_conn
    assert sorted(registry.cell_uuids()) == sorted([cell.uuid, other.uuid])


def test_transport_url_change_gives_a_new_connection(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    old_conn = registry.get(cell)
    updated = cell.update(admin_ctx, transport_url="fake://elsewhere/")
    new_conn = registry.get(updated)
    assert new_conn is not old_conn
    assert new_conn.transport_url == "fake://elsewhere/"


def test_url_changed_by_another_process_is_picked_up_on_reread(
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    api_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No local event: the registry notices the new URL in the re-read record."""
    (cell,) = make_cells(1)
    new_url = migrated_sqlite(tmp_path, "moved.db")
    old_conn = registry.get(cell)
    spy = DisposeSpy(monkeypatch, old_conn.engine)
    engine = sa.create_engine(api_db, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.update(cell_mappings)
            .where(cell_mappings.c.uuid == cell.uuid)
            .values(database_connection=new_url)
        )
    engine.dispose()
    assert registry.get(cell) is old_conn  # nothing re-read yet: nothing changes

    reread = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    new_conn = registry.get(reread)
    assert new_conn is not old_conn
    assert new_conn.engine.url.database == str(tmp_path / "moved.db")
    assert spy.calls == 1
    assert registry.cell_uuids() == [cell.uuid]  # the stale entry is gone


def test_destroyed_cell_is_released(
    make_cells: MakeCells, admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed, kept = make_cells(2)
    conn = registry.get(doomed)
    kept_conn = registry.get(kept)
    spy = DisposeSpy(monkeypatch, conn.engine)
    doomed.destroy(admin_ctx)
    assert spy.calls == 1
    assert registry.cell_uuids() == [kept.uuid]
    assert registry.get(kept) is kept_conn


def test_release_retain_current_and_reset(
    make_cells: MakeCells, monkeypatch: pytest.MonkeyPatch
) -> None:
    c1, c2, c3 = make_cells(3)
    conns = [registry.get(c) for c in (c1, c2, c3)]
    spies = [DisposeSpy(monkeypatch, conn.engine) for conn in conns]

    registry.release(["not-a-cell"])
    assert [s.calls for s in spies] == [0, 0, 0]

    registry.release([c1.uuid])
    assert [s.calls for s in spies] == [1, 0, 0]
    assert sorted(registry.cell_uuids()) == sorted([c2.uuid, c3.uuid])
    assert registry.get(c1) is not conns[0]  # rebuilt on demand

    registry.retain_current([c1, c3])
    assert [s.calls for s in spies] == [1, 1, 0]
    assert sorted(registry.cell_uuids()) == sorted([c1.uuid, c3.uuid])
    assert registry.get(c3) is conns[2]

    moved = dataclasses.replace(c3, database_connection=c1.database_connection)
    registry.retain_current([c1, moved])  # c3 is held for URLs it no longer has
    assert [s.calls for s in spies] == [1, 1, 1]
    assert registry.cell_uuids() == [c1.uuid]

    registry.reset()
    assert spies[2].calls == 1
    assert registry.cell_uuids() == []


def test_release_cleans_up_a_built_transport(
    make_cells: MakeCells, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellrouter import messaging

    (cell,) = make_cells(1)
    conn = registry.get(cell)
    transport = conn.transport
    assert transport is not None
    cleaned: list[Any] = []
    real_cleanup = messaging.cleanup_transport

    def cleanup(t: Any) -> None:
        cleaned.append(t)
        real_cleanup(t)

    monkeypatch.setattr(messaging, "cleanup_transport", cleanup)
    registry.release([cell.uuid])
    assert cleaned == [transport]


# -- the local cell ------------------------------------------------------------------


def test_local_connection_follows_the_configuration(
    conf: cfg.ConfigOpts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf.set_override("connection", f"sqlite:///{tmp_path / 'a.db'}", group="database")
    first = registry.local()
    assert registry.local() is first
    assert first.engine is database.local_engine()
    assert first.engine.url.database == str(tmp_path / "a.db")
    spy = DisposeSpy(monkeypatch, first.engine)

    conf.set_override("connection", f"sqlite:///{tmp_path / 'b.db'}", group="database")
    second = registry.local()
    assert second is not first
    assert second.engine.url.database == str(tmp_path / "b.db")
    assert spy.calls >= 1


# -- fork ----------------------------------------------------------------------------


def _read_all(fd: int, timeout: float) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the forked child did not report in time")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")
def test_forked_child_gets_new_pools(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    instance_uuid = make_instance(cell, host="forked-host")
    with target_cell(admin_ctx, cell) as cctx:
        parent_conn = registry.get(cell)
        parent_engine = cctx.engine
        assert get_instance(cctx, instance_uuid)["host"] == "forked-host"
    parent_pool = parent_engine.pool
    assert parent_pool.checkedin() == 1  # a live pooled connection the child must not use
    parent_ids = {"conn": id(parent_conn), "engine": id(parent_engine), "pool": id(parent_pool)}

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, then leave without running any pytest machinery
        status = 0
        try:
            os.close(read_fd)
            with target_cell(admin_ctx, cell) as child_ctx:
                report = {
                    "conn": id(registry.get(cell)),
                    "engine": id(child_ctx.engine),
                    "pool": id(child_ctx.engine.pool),
                    "parent_pool_detached": parent_engine.pool is not parent_pool,
                    "cells": registry.cell_uuids(),
                    "host": get_instance(child_ctx, instance_uuid)["host"],
                }
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            report = {"error": repr(exc)}
            status = 1
        try:
            os.write(write_fd, json.dumps(report).encode())
        finally:
            os._exit(status)

    os.close(write_fd)
    try:
        raw = _read_all(read_fd, timeout=60)
    finally:
        os.close(read_fd)
        _, wait_status = os.waitpid(pid, 0)
    report = json.loads(raw)
    assert "error" not in report, report["error"]
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert report["conn"] != parent_ids["conn"]
    assert report["engine"] != parent_ids["engine"]
    assert report["pool"] != parent_ids["pool"]
    assert report["parent_pool_detached"] is True
    assert report["cells"] == [cell.uuid]
    assert report["host"] == "forked-host"

    # The parent is unaffected: same connection objects, its pooled connection still works.
    assert registry.get(cell) is parent_conn
    assert parent_engine.pool is parent_pool
    with target_cell(admin_ctx, cell) as cctx:
        assert cctx.engine is parent_engine
        assert get_instance(cctx, instance_uuid)["host"] == "forked-host"


def test_rename_or_disable_keeps_the_connections(
    make_cells: MakeCells, admin_ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cell,) = make_cells(1)
    conn = registry.get(cell)
    disposed: list[object] = []
    monkeypatch.setattr(registry.CellConnection, "dispose", lambda self: disposed.append(self))
    renamed = cell.update(admin_ctx, name="renamed", disabled=True)
    assert disposed == []
    assert registry.get(renamed) is conn
    with target_cell(admin_ctx, renamed) as cctx:
        assert cctx.engine is conn.engine


def test_a_released_connection_never_rebuilds_its_transport(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    with target_cell(admin_ctx, cell) as cctx:
        cell.destroy(admin_ctx)  # releases the connection this context holds
        with pytest.raises(exception.ConnectionsReleased, match="were released") as err:
            cctx.transport  # noqa: B018
    assert err.value.kwargs["uuid"] == cell.uuid


def test_a_stale_mapping_does_not_tear_down_the_new_connections(
    make_cells: MakeCells, admin_ctx: RequestContext, tmp_path: Path
) -> None:
    """A request that read the mapping before an URL change must not thrash the pools."""
    (old,) = make_cells(1)
    old_conn = registry.get(old)
    moved = old.update(admin_ctx, database_connection=f"sqlite:///{tmp_path / 'moved.db'}")
    new_conn = registry.get(moved)
    assert new_conn is not old_conn
    for _ in range(3):  # in-flight requests with the old record, interleaved with new ones
        assert registry.get(old) is new_conn
        assert registry.get(moved) is new_conn
    assert registry.cell_uuids() == [old.uuid]
    with target_cell(admin_ctx, old) as cctx:
        assert cctx.engine is new_conn.engine
