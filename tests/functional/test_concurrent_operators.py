"""Operators racing each other: 4 discover_hosts and 4 map_instances processes at once.

On MariaDB, and on PostgreSQL too (the other dialect's insert-ignore). Two
cells with 1000 compute hosts and 20000 instances each, a few of them
mapped up-front. Eight processes start on one signal; none may fail,
nothing may be mapped twice, everything must end up mapped to its own cell,
and the runs' own counts must add up to exactly what was created.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

import cellrouter.conf
from cellrouter.cells import registry
from cellrouter.cells.context import get_admin_context
from cellrouter.db import migration
from cellrouter.db.api_schema import host_mappings, instance_mapping_markers, instance_mappings
from cellrouter.db.cell_schema import compute_nodes, instances
from cellrouter.db.types import utcnow
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping

HOSTS_PER_CELL = 1000
EXTRA_NODES_PER_CELL = 200  # hosts with a second node
INSTANCES_PER_CELL = 20000
PROCESSES = 4

_CHILD = textwrap.dedent(
    """
    import json, logging, os, sys, time
    import cellrouter.conf
    from cellrouter.cells.context import get_admin_context

    retries = []  # transactions the database aborted (deadlocks) and bulk retried
    handler = logging.Handler(logging.DEBUG)
    handler.emit = retries.append
    logging.getLogger("cellrouter.db.bulk").addHandler(handler)
    logging.getLogger("cellrouter.db.bulk").setLevel(logging.DEBUG)

    api_url, go, verb = sys.argv[1:4]
    conf = cellrouter.conf.setup([], default_config_files=[])
    conf.set_override("connection", api_url, group="api_database")
    from cellrouter.manage.discovery import discover_hosts
    from cellrouter.manage.instance_mapper import map_instances

    while not os.path.exists(go):
        time.sleep(0.005)
    ctx = get_admin_context()
    if verb == "discover":  # all cells at once, or one cell at a time in the given order
        cells = sys.argv[4].split(",") if len(sys.argv) > 4 else [None]
        out = {"new": [], "conflicts": 0, "failed": {}, "scanned": 0}
        for cell_uuid in cells:
            r = discover_hosts(ctx, cell_uuid=cell_uuid)
            out["new"] += r.new_hosts
            out["conflicts"] += len(r.conflicts)
            out["failed"].update(r.failed_cells)
            out["scanned"] += r.cells_scanned
    else:
        out = {}
        for cell_uuid in sys.argv[4].split(","):
            r = map_instances(ctx, cell_uuid, batch_size=int(sys.argv[5]))
            out[cell_uuid] = [r.mapped, r.complete]
    out["retries"] = len(retries)
    print(json.dumps(out))
    """
)


@pytest.fixture(params=["mariadb", "postgresql"])
def new_database(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``new_database(label) -> url``: a fresh database on the parametrized backend."""
    factory = "mysql_db_factory" if request.param == "mariadb" else "pg_db_factory"
    return request.getfixturevalue(factory)


@pytest.fixture
def api_conf(new_database: Callable[..., str]) -> Iterator[tuple[cfg.ConfigOpts, str]]:
    """A migrated API database, configured; the configuration is reset afterwards."""
    url = new_database("ops_api")
    migration.sync("api", url)
    conf = cellrouter.conf.setup([], default_config_files=[])
    conf.set_override("connection", url, group="api_database")
    try:
        yield conf, url
    finally:
        registry.reset()
        conf.reset()
        cellrouter.conf.setup([], default_config_files=[])


def _seed_cell(url: str, index: int) -> tuple[list[str], list[str]]:
    """Migrate the cell and bulk-insert its compute nodes and instances."""
    migration.sync("cell", url)
    now = utcnow()
    hosts = [f"cell{index}-compute-{i:04d}" for i in range(HOSTS_PER_CELL)]
    nodes = [
        {"uuid": str(uuidlib.uuid4()), "host": host, "hypervisor_hostname": f"{host}.n{n}"}
        for n, group in enumerate((hosts, hosts[:EXTRA_NODES_PER_CELL]))
        for host in group
    ]
    rows = [
        {
            "uuid": str(uuidlib.uuid4()),
            "project_id": f"project-{i % 50}",
            "user_id": f"user-{i % 200}",
            "created_at": now,
            # every 10th instance is soft-deleted (deleted = id, as the cell DB does)
            "deleted": i + 1 if i % 10 == 9 else 0,
        }
        for i in range(INSTANCES_PER_CELL)
    ]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(compute_nodes), nodes)
            conn.execute(sa.insert(instances), rows)
    finally:
        engine.dispose()
    return hosts, [row["uuid"] for row in rows]


def _scalar(url: str, stmt: Any) -> Any:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(stmt).scalar_one()
    finally:
        engine.dispose()


def _rows(url: str, stmt: Any) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt))
    finally:
        engine.dispose()


def test_concurrent_discover_hosts_and_map_instances(
    api_conf: tuple[cfg.ConfigOpts, str],
    new_database: Callable[..., str],
    tmp_path: Path,
) -> None:
    _conf, api_url = api_conf
    ctx = get_admin_context()
    cells: list[CellMapping] = []
    hosts: dict[str, list[str]] = {}
    uuids: dict[str, list[str]] = {}
    for index in (1, 2):
        url = new_database(f"ops_cell{index}")
        cell = CellMapping.create(
            ctx, name=f"cell{index}", database_connection=url, transport_url=f"fake://c{index}/"
        )
        hosts[cell.uuid], uuids[cell.uuid] = _seed_cell(url, index)
        cells.append(cell)
    # a few mappings exist already: they must be neither duplicated nor counted
    premapped_hosts = 0
    premapped_instances = 0
    for cell in cells:
        for host in hosts[cell.uuid][::250]:
            HostMapping.create(ctx, host=host, cell_mapping=cell)
            premapped_hosts += 1
        for instance_uuid in uuids[cell.uuid][::2000]:
            InstanceMapping.create(
                ctx, instance_uuid=instance_uuid, project_id="pre", cell_mapping=cell
            )
            premapped_instances += 1

    go = tmp_path / "go"
    base = [sys.executable, "-c", _CHILD, api_url, str(go)]
    procs = []
    for i in range(PROCESSES):
        args = [*base, "discover"] + ([] if i % 2 == 0 else [f"{cells[1].uuid},{cells[0].uuid}"])
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for i in range(PROCESSES):
        order = [cell.uuid for cell in (cells if i % 2 == 0 else cells[::-1])]
        procs.append(
            subprocess.Popen(
                [*base, "map", ",".join(order), str(300 + 150 * i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    time.sleep(1.0)  # let every child import and wait on the signal
    started = time.monotonic()
    go.touch()
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr.decode()[-3000:]
        outputs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    elapsed = time.monotonic() - started
    retries = [out.pop("retries") for out in outputs]
    print(f"8 concurrent operator processes done in {elapsed:.1f} s, retries {retries}")

    discovered, mapped = outputs[:PROCESSES], outputs[PROCESSES:]

    # -- hosts: each mapped exactly once, to its cell, and every node flagged
    new_hosts = [tuple(pair) for out in discovered for pair in out["new"]]
    assert len(new_hosts) == len(set(new_hosts)) == 2 * HOSTS_PER_CELL - premapped_hosts
    assert all(out["conflicts"] == 0 and out["failed"] == {} for out in discovered)
    assert all(out["scanned"] == 2 for out in discovered)
    stored = _rows(api_url, sa.select(host_mappings.c.host, host_mappings.c.cell_id))
    assert len(stored) == len({host for host, _ in stored}) == 2 * HOSTS_PER_CELL
    cell_ids = {cell.uuid: cell.id for cell in cells}
    expected_hosts = {h: cell_ids[c] for c, group in hosts.items() for h in group}
    assert dict(stored) == expected_hosts
    for cell in cells:
        unflagged = sa.select(sa.func.count()).where(compute_nodes.c.mapped == sa.false())
        assert _scalar(cell.database_connection, unflagged) == 0

    # -- instances: each mapped exactly once, to its cell; the runs' counts add up
    total = 2 * INSTANCES_PER_CELL
    count_stmt = sa.select(
        sa.func.count(), sa.func.count(sa.distinct(instance_mappings.c.instance_uuid))
    )
    assert tuple(_rows(api_url, count_stmt)[0]) == (total, total)
    for cell in cells:
        runs = [out[cell.uuid] for out in mapped]
        assert all(complete for _, complete in runs)
        assert sum(n for n, _ in runs) == INSTANCES_PER_CELL - premapped_instances // 2
        in_cell = sa.select(sa.func.count()).where(instance_mappings.c.cell_id == cell.id)
        assert _scalar(api_url, in_cell) == INSTANCES_PER_CELL
        marker = sa.select(instance_mapping_markers.c.last_instance_id).where(
            instance_mapping_markers.c.cell_id == cell.id
        )
        assert _scalar(api_url, marker) == INSTANCES_PER_CELL
    queued = sa.select(sa.func.count()).where(instance_mappings.c.queued_for_delete == sa.true())
    # the up-front mappings (every 2000th, never a deleted one) were created unqueued
    assert _scalar(api_url, queued) == total // 10
    mapped_uuids = {u for (u,) in _rows(api_url, sa.select(instance_mappings.c.instance_uuid))}
    assert mapped_uuids == {u for group in uuids.values() for u in group}
