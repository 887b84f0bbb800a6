"""map_instances on SQLite: batches, markers, resume, reset, races and SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from cellrouter import exception
from cellrouter.cells.context import RequestContext
from cellrouter.db import migration
from cellrouter.db.api_schema import instance_mapping_markers, instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.db.types import utcnow
from cellrouter.index import events
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.manage.instance_mapper import MapInstancesResult, get_marker, map_instances


def seed_instances(cell: CellMapping, count: int, **values: Any) -> list[str]:
    """Insert ``count`` instances into ``cell`` in one executemany; returns their uuids."""
    now = utcnow()
    rows = [
        {
            "uuid": str(uuidlib.uuid4()),
            "project_id": f"project-{i % 7}",
            "user_id": f"user-{i % 3}",
            "created_at": now,
            "deleted": 0,
            **values,
        }
        for i in range(count)
    ]
    engine = sa.create_engine(cell.database_connection, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(instances), rows)
    finally:
        engine.dispose()
    return [row["uuid"] for row in rows]


def api_rows(api_db: str, stmt: sa.Select[Any]) -> list[sa.Row[Any]]:
    engine = sa.create_engine(api_db, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt))
    finally:
        engine.dispose()


def mapping_counts(api_db: str) -> tuple[int, int]:
    """(rows, distinct instance uuids) of instance_mappings."""
    stmt = sa.select(
        sa.func.count(), sa.func.count(sa.distinct(instance_mappings.c.instance_uuid))
    ).select_from(instance_mappings)
    total, distinct = api_rows(api_db, stmt)[0]
    return int(total), int(distinct)


def mapped_cells(api_db: str) -> dict[str, int]:
    stmt = sa.select(instance_mappings.c.instance_uuid, instance_mappings.c.cell_id)
    return {uuid: cell_id for uuid, cell_id in api_rows(api_db, stmt)}


@pytest.fixture
def instance_events() -> Iterator[list[tuple[str, ...]]]:
    seen: list[tuple[str, ...]] = []

    def listener(kind: str, keys: tuple[str, ...]) -> None:
        if kind == "instance":
            seen.append(keys)

    events.subscribe(listener)
    yield seen
    events.unsubscribe(listener)


def test_maps_every_instance_of_the_cell(
    make_cells, admin_ctx: RequestContext, api_db: str, instance_events
) -> None:
    cell, other = make_cells(2)
    alive = seed_instances(cell, 30)
    deleted = seed_instances(cell, 5, deleted=1)
    seed_instances(other, 4)

    result = map_instances(admin_ctx, cell.uuid, batch_size=7)

    assert result == MapInstancesResult(mapped=35, complete=True, examined=35, marker=35)
    assert mapped_cells(api_db) == dict.fromkeys(alive + deleted, cell.id)
    assert mapping_counts(api_db) == (35, 35)
    found = {m.instance_uuid: m for m in InstanceMapping.get_by_instance_uuids(admin_ctx, alive)}
    assert not any(m.queued_for_delete for m in found.values())
    assert all(m.cell_uuid == cell.uuid for m in found.values())
    assert {m.project_id for m in found.values()} == {f"project-{i}" for i in range(7)}
    assert {m.user_id for m in found.values()} == {"user-0", "user-1", "user-2"}
    queued = InstanceMapping.get_by_instance_uuids(admin_ctx, deleted)
    assert len(queued) == 5 and all(m.queued_for_delete for m in queued)
    # one event per committed batch, with exactly the new uuids
    assert [len(keys) for keys in instance_events] == [7, 7, 7, 7, 7]
    assert sorted(k for keys in instance_events for k in keys) == sorted(alive + deleted)
    assert get_marker(admin_ctx, cell.uuid) == 35


def test_rerun_is_idempotent_and_only_maps_new_instances(
    make_cells, admin_ctx: RequestContext, api_db: str, instance_events
) -> None:
    (cell,) = make_cells(1)
    seed_instances(cell, 20)
    assert map_instances(admin_ctx, cell.uuid).mapped == 20
    instance_events.clear()

    again = map_instances(admin_ctx, cell.uuid)
    assert again == MapInstancesResult(mapped=0, complete=True, examined=0, marker=20)
    assert instance_events == []

    later = seed_instances(cell, 3)
    result = map_instances(admin_ctx, cell.uuid)
    assert result == MapInstancesResult(mapped=3, complete=True, examined=3, marker=23)
    assert instance_events == [tuple(later)]
    assert mapping_counts(api_db) == (23, 23)


def test_existing_mappings_are_kept_and_not_counted(
    make_cells, make_instance, admin_ctx: RequestContext, api_db: str, instance_events
) -> None:
    cell, other = make_cells(2)
    premapped = [make_instance(cell) for _ in range(3)]
    fresh = seed_instances(cell, 4)
    # an instance of this cell whose uuid is already mapped to another cell: left alone
    moved = seed_instances(cell, 1)[0]
    InstanceMapping.create(admin_ctx, instance_uuid=moved, project_id="p", cell_mapping=other)
    instance_events.clear()

    result = map_instances(admin_ctx, cell.uuid, batch_size=2)

    assert result.mapped == 4 and result.examined == 8 and result.complete
    cells = mapped_cells(api_db)
    assert all(cells[u] == cell.id for u in premapped + fresh)
    assert cells[moved] == other.id
    assert sorted(k for keys in instance_events for k in keys) == sorted(fresh)
    assert mapping_counts(api_db) == (8, 8)


def test_max_count_stops_early_and_the_next_run_continues(
    make_cells, admin_ctx: RequestContext, api_db: str
) -> None:
    (cell,) = make_cells(1)
    seed_instances(cell, 25)

    first = map_instances(admin_ctx, cell.uuid, max_count=10, batch_size=4)
    assert first == MapInstancesResult(mapped=10, complete=False, examined=10, marker=10)
    assert get_marker(admin_ctx, cell.uuid) == 10
    assert mapping_counts(api_db) == (10, 10)

    second = map_instances(admin_ctx, cell.uuid, max_count=10, batch_size=3)
    assert second == MapInstancesResult(mapped=10, complete=False, examined=10, marker=20)

    # exactly the rest: complete, although it stopped because of max_count
    third = map_instances(admin_ctx, cell.uuid, max_count=5)
    assert third == MapInstancesResult(mapped=5, complete=True, examined=5, marker=25)
    assert mapping_counts(api_db) == (25, 25)


def test_reset_rescans_from_the_start(make_cells, admin_ctx: RequestContext, api_db: str) -> None:
    (cell,) = make_cells(1)
    uuids = seed_instances(cell, 12)
    map_instances(admin_ctx, cell.uuid, batch_size=5)
    assert InstanceMapping.destroy_many(admin_ctx, uuids[:4]) == 4

    assert map_instances(admin_ctx, cell.uuid).mapped == 0  # the marker is past them
    result = map_instances(admin_ctx, cell.uuid, reset=True, max_count=6, batch_size=5)
    assert result == MapInstancesResult(mapped=4, complete=False, examined=6, marker=6)
    assert get_marker(admin_ctx, cell.uuid) == 6  # the reset deleted the old marker
    assert mapping_counts(api_db) == (12, 12)


def test_empty_cell_is_complete_without_a_marker(
    make_cells, admin_ctx: RequestContext, api_db: str
) -> None:
    (cell,) = make_cells(1)
    assert map_instances(admin_ctx, cell.uuid) == MapInstancesResult(0, True, 0, None)
    assert get_marker(admin_ctx, cell.uuid) is None
    assert map_instances(admin_ctx, cell.uuid, max_count=1) == MapInstancesResult(0, True, 0, None)


def test_progress_reports_running_totals(make_cells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    seed_instances(cell, 10)
    calls: list[tuple[int, int]] = []
    map_instances(admin_ctx, cell.uuid, batch_size=4, progress=lambda e, m: calls.append((e, m)))
    assert calls == [(4, 4), (8, 8), (10, 10)]


def test_instance_without_project_is_still_mapped(make_cells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    (orphan,) = seed_instances(cell, 1, project_id=None, user_id=None)
    assert map_instances(admin_ctx, cell.uuid).mapped == 1
    mapping = InstanceMapping.get_by_instance_uuid(admin_ctx, orphan)
    assert (mapping.project_id, mapping.user_id) == ("", None)


@pytest.mark.parametrize("max_count", [0, -3, True, 2.5, "7"])
def test_invalid_max_count_is_rejected(
    make_cells, admin_ctx: RequestContext, max_count: Any
) -> None:
    (cell,) = make_cells(1)
    with pytest.raises(exception.InvalidMaxCount):
        map_instances(admin_ctx, cell.uuid, max_count=max_count)
    assert get_marker(admin_ctx, cell.uuid) is None


def test_invalid_batch_size_is_rejected(make_cells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    with pytest.raises(exception.InvalidValue, match="batch_size"):
        map_instances(admin_ctx, cell.uuid, batch_size=0)


def test_unknown_cell_is_rejected(api_db: str, admin_ctx: RequestContext) -> None:
    with pytest.raises(exception.CellMappingNotFound):
        map_instances(admin_ctx, str(uuidlib.uuid4()))


def test_unreachable_cell_raises_cell_unavailable(
    api_db: str, admin_ctx: RequestContext, tmp_path
) -> None:
    # a database without the cell schema: every read fails
    cell = CellMapping.create(
        admin_ctx,
        name="broken",
        database_connection=f"sqlite:///{tmp_path / 'empty.db'}",
        transport_url="fake://broken/",
    )
    with pytest.raises(exception.CellUnavailable, match="broken"):
        map_instances(admin_ctx, cell.uuid)


def test_marker_goes_with_its_cell(make_cells, admin_ctx: RequestContext, api_db: str) -> None:
    (cell,) = make_cells(1)
    uuids = seed_instances(cell, 3)
    map_instances(admin_ctx, cell.uuid)
    InstanceMapping.destroy_many(admin_ctx, uuids)
    cell.destroy(admin_ctx)  # the marker row must not block this
    assert api_rows(api_db, sa.select(instance_mapping_markers)) == []


def test_marker_never_moves_back(make_cells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    seed_instances(cell, 10)
    map_instances(admin_ctx, cell.uuid)
    # A slower run still working on the start of the cell must not pull it back.
    result = map_instances(admin_ctx, cell.uuid, reset=True, max_count=3)
    assert result.marker == 3 and get_marker(admin_ctx, cell.uuid) == 3  # reset: explicit
    map_instances(admin_ctx, cell.uuid)
    from cellrouter.db.database import api_engine
    from cellrouter.manage.instance_mapper import _advance_marker

    with api_engine().begin() as conn:
        assert _advance_marker(conn, cell.id, 4) == 10
    assert get_marker(admin_ctx, cell.uuid) == 10


def test_concurrent_runs_in_threads_never_duplicate(
    make_cells, admin_ctx: RequestContext, api_db: str
) -> None:
    cell, other = make_cells(2)
    seed_instances(cell, 3000)
    seed_instances(other, 1000)
    results: list[MapInstancesResult] = []
    errors: list[BaseException] = []

    def run(target: CellMapping, batch: int) -> None:
        try:
            results.append(map_instances(admin_ctx, target.uuid, batch_size=batch))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(cell if i % 4 else other, 50 + 30 * i)) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert all(r.complete for r in results)
    assert sum(r.mapped for r in results) == 4000
    assert mapping_counts(api_db) == (4000, 4000)


# -- SIGKILL -------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    import cellrouter.conf
    from cellrouter.cells.context import get_admin_context
    from cellrouter.manage.instance_mapper import map_instances

    conf = cellrouter.conf.setup([], default_config_files=[])
    conf.set_override("connection", sys.argv[1], group="api_database")
    map_instances(get_admin_context(), sys.argv[2], batch_size=int(sys.argv[3]))
    print("finished", flush=True)
    """
)


def _kill_mid_run(api_db: str, cell_uuid: str, total: int, batch: int) -> int:
    """Start map_instances in a child, SIGKILL it once it mapped some; returns the count then."""
    before = mapping_counts(api_db)[0]
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, api_db, cell_uuid, str(batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if mapping_counts(api_db)[0] >= before + 3 * batch:
                time.sleep(random.uniform(0, 0.05))  # land anywhere in a batch
                break
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stdout, stderr = child.communicate()
    assert child.returncode == -signal.SIGKILL, (stdout, stderr)
    count = mapping_counts(api_db)[0]
    assert count < total, "the child finished before it could be killed: make the cell bigger"
    return count


def test_sigkill_at_any_moment_then_resume_maps_each_instance_once(
    make_cells, admin_ctx: RequestContext, api_db: str
) -> None:
    (cell,) = make_cells(1)
    total = 20000
    uuids = seed_instances(cell, total)

    first = _kill_mid_run(api_db, cell.uuid, total, batch=50)
    # the marker and the mappings of each batch commit together
    assert get_marker(admin_ctx, cell.uuid) == first
    second = _kill_mid_run(api_db, cell.uuid, total, batch=70)
    assert first < second < total
    assert get_marker(admin_ctx, cell.uuid) == second

    result = map_instances(admin_ctx, cell.uuid)
    assert result.complete and result.mapped == total - second
    assert mapping_counts(api_db) == (total, total)
    assert mapped_cells(api_db) == dict.fromkeys(uuids, cell.id)


def test_marker_table_revision_downgrades_alone(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    migration.sync("api", url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert "instance_mapping_markers" in tables
        assert migration.sync("api", url, "api_0001") == (migration.head("api"), "api_0001")
        after = set(sa.inspect(engine).get_table_names())
        assert "instance_mapping_markers" not in after
        assert {"cell_mappings", "instance_mappings", "host_mappings"} <= after
        assert migration.sync("api", url) == ("api_0001", migration.head("api"))
        assert "instance_mapping_markers" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
