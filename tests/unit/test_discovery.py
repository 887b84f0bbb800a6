"""Host discovery on SQLite: compute nodes, services, conflicts, races, periodic task."""

from __future__ import annotations

import logging
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
from cellrouter.db.api_schema import host_mappings
from cellrouter.db.cell_schema import compute_nodes, services
from cellrouter.index import events
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.manage import discovery
from cellrouter.manage.discovery import (
    DiscoveryResult,
    HostConflict,
    PeriodicDiscovery,
    discover_hosts,
    start_periodic_discovery,
)


def _execute(url: str, stmt: Any, rows: list[dict[str, Any]] | None = None) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(stmt, rows) if rows is not None else conn.execute(stmt)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def add_nodes(cell: CellMapping, *hosts: str, nodes_per_host: int = 1, **values: Any) -> None:
    """Compute nodes for ``hosts`` in ``cell`` (one executemany)."""
    rows = [
        {
            "uuid": str(uuidlib.uuid4()),
            "host": host,
            "hypervisor_hostname": f"{host}-node{n}",
            "deleted": 0,
            **values,
        }
        for host in hosts
        for n in range(nodes_per_host)
    ]
    _execute(cell.database_connection, sa.insert(compute_nodes), rows)


def add_services(cell: CellMapping, *hosts: str, binary: str = "nova-compute", **values: Any):
    rows = [
        {"uuid": str(uuidlib.uuid4()), "host": host, "binary": binary, "deleted": 0, **values}
        for host in hosts
    ]
    _execute(cell.database_connection, sa.insert(services), rows)


def unmapped_nodes(cell: CellMapping) -> list[str]:
    stmt = (
        sa.select(compute_nodes.c.hypervisor_hostname)
        .where(compute_nodes.c.mapped == sa.false(), compute_nodes.c.deleted == 0)
        .order_by(compute_nodes.c.hypervisor_hostname)
    )
    return [name for (name,) in _execute(cell.database_connection, stmt)]


def host_cells(admin_ctx: RequestContext) -> dict[str, str]:
    return {m.host: m.cell_mapping.uuid for m in HostMapping.get_all(admin_ctx)}


@pytest.fixture
def host_events() -> Iterator[list[tuple[str, ...]]]:
    seen: list[tuple[str, ...]] = []

    def listener(kind: str, keys: tuple[str, ...]) -> None:
        if kind == "host":
            seen.append(keys)

    events.subscribe(listener)
    yield seen
    events.unsubscribe(listener)


@pytest.fixture
def cell0(api_db: str, admin_ctx: RequestContext, tmp_path) -> CellMapping:
    url = f"sqlite:///{tmp_path / 'cell0.db'}"
    migration.sync("cell", url)
    return CellMapping.create(
        admin_ctx, uuid=CELL0_UUID, name="cell0", database_connection=url, transport_url="none:///"
    )


def test_maps_hosts_of_unmapped_compute_nodes(
    cell0: CellMapping, make_cells, admin_ctx: RequestContext, host_events
) -> None:
    cell1, cell2 = make_cells(2)
    add_nodes(cell1, "h1", "h2", nodes_per_host=2)
    add_nodes(cell2, "h3")
    add_nodes(cell2, "gone", deleted=7)
    add_nodes(cell2, None)  # a node without host is no host
    add_nodes(cell0, "never-in-cell0")

    result = discover_hosts(admin_ctx)

    assert result == DiscoveryResult(
        new_hosts=[(cell1.uuid, "h1"), (cell1.uuid, "h2"), (cell2.uuid, "h3")],
        conflicts=[],
        cells_scanned=2,
    )
    assert host_cells(admin_ctx) == {"h1": cell1.uuid, "h2": cell1.uuid, "h3": cell2.uuid}
    assert unmapped_nodes(cell1) == []
    assert unmapped_nodes(cell2) == ["None-node0"]
    assert unmapped_nodes(cell0) == ["never-in-cell0-node0"]
    assert host_events == [("h1", "h2"), ("h3",)]


def test_rerun_finds_nothing_new(make_cells, admin_ctx: RequestContext, host_events) -> None:
    (cell,) = make_cells(1)
    add_nodes(cell, "h1", "h2")
    discover_hosts(admin_ctx)
    host_events.clear()
    assert discover_hosts(admin_ctx) == DiscoveryResult([], [], 1)
    assert host_events == []


def test_new_node_on_a_mapped_host_is_flagged_not_remapped(
    make_cells, admin_ctx: RequestContext, host_events
) -> None:
    (cell,) = make_cells(1)
    add_nodes(cell, "h1")
    discover_hosts(admin_ctx)
    host_events.clear()
    _execute(
        cell.database_connection,
        sa.insert(compute_nodes).values(host="h1", hypervisor_hostname="h1-ironic-2", deleted=0),
    )
    assert discover_hosts(admin_ctx) == DiscoveryResult([], [], 1)
    assert unmapped_nodes(cell) == []
    assert host_events == []


def test_host_mapped_to_another_cell_is_a_conflict(make_cells, admin_ctx: RequestContext) -> None:
    cell1, cell2 = make_cells(2)
    add_nodes(cell1, "shared", "a")
    discover_hosts(admin_ctx, cell1.uuid)
    add_nodes(cell2, "shared", "b")

    result = discover_hosts(admin_ctx)

    assert result.new_hosts == [(cell2.uuid, "b")]
    assert result.conflicts == [
        HostConflict(host="shared", cell_uuid=cell2.uuid, mapped_cell_uuid=cell1.uuid)
    ]
    assert host_cells(admin_ctx)["shared"] == cell1.uuid
    assert unmapped_nodes(cell2) == ["shared-node0"]  # never flagged: reported every run
    assert discover_hosts(admin_ctx).conflicts == result.conflicts


def test_same_new_host_in_two_cells_goes_to_the_first(
    make_cells, admin_ctx: RequestContext
) -> None:
    cell1, cell2 = make_cells(2)
    add_nodes(cell1, "dup")
    add_nodes(cell2, "dup")
    result = discover_hosts(admin_ctx)
    assert result.new_hosts == [(cell1.uuid, "dup")]
    assert result.conflicts == [HostConflict("dup", cell2.uuid, cell1.uuid)]


def test_by_service_maps_compute_services_only(make_cells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    add_services(cell, "c1", "c2")
    add_services(cell, "c3", binary="cellrouter-compute")
    add_services(cell, "sched", binary="nova-scheduler")
    add_services(cell, "old", deleted=99)
    add_nodes(cell, "c1", "nodeonly")

    result = discover_hosts(admin_ctx, by_service=True)

    assert result == DiscoveryResult(
        [(cell.uuid, "c1"), (cell.uuid, "c2"), (cell.uuid, "c3")], [], 1
    )
    assert set(host_cells(admin_ctx)) == {"c1", "c2", "c3"}
    assert unmapped_nodes(cell) == ["c1-node0", "nodeonly-node0"]  # nodes are not touched
    assert discover_hosts(admin_ctx, by_service=True).new_hosts == []
    # the compute-node mode then flags c1's node without a new mapping
    assert discover_hosts(admin_ctx).new_hosts == [(cell.uuid, "nodeonly")]
    assert unmapped_nodes(cell) == []


def test_cell_uuid_limits_discovery_to_that_cell(
    cell0: CellMapping, make_cells, admin_ctx: RequestContext
) -> None:
    cell1, cell2 = make_cells(2)
    add_nodes(cell1, "h1")
    add_nodes(cell2, "h2")
    assert discover_hosts(admin_ctx, cell_uuid=cell2.uuid) == DiscoveryResult(
        [(cell2.uuid, "h2")], [], 1
    )
    assert discover_hosts(admin_ctx, cell_uuid=CELL0_UUID) == DiscoveryResult([], [], 0)
    with pytest.raises(exception.CellMappingNotFound):
        discover_hosts(admin_ctx, cell_uuid=str(uuidlib.uuid4()))


def test_a_failing_cell_does_not_stop_the_others(
    make_cells, admin_ctx: RequestContext, tmp_path, caplog
) -> None:
    (good,) = make_cells(1)
    broken = CellMapping.create(
        admin_ctx,
        name="broken",
        database_connection=f"sqlite:///{tmp_path / 'no-schema.db'}",
        transport_url="fake://broken/",
    )
    add_nodes(good, "h1")
    with caplog.at_level(logging.ERROR, logger="cellrouter.manage.discovery"):
        result = discover_hosts(admin_ctx)
    assert result.new_hosts == [(good.uuid, "h1")]
    assert result.cells_scanned == 1
    assert list(result.failed_cells) == [broken.uuid]
    assert "broken" in result.failed_cells[broken.uuid]
    assert "broken" in caplog.text


def test_many_hosts_in_chunks(make_cells, admin_ctx: RequestContext) -> None:
    (cell,) = make_cells(1)
    hosts = [f"host-{i:05d}" for i in range(1234)]
    add_nodes(cell, *hosts)
    HostMapping.create(admin_ctx, host="host-00007", cell_mapping=cell)
    result = discover_hosts(admin_ctx)
    assert len(result.new_hosts) == 1233
    assert len(host_cells(admin_ctx)) == 1234
    assert unmapped_nodes(cell) == []


def test_concurrent_discovery_in_threads(make_cells, admin_ctx: RequestContext, api_db) -> None:
    cells = make_cells(2)
    for index, cell in enumerate(cells):
        add_nodes(cell, *(f"c{index}-h{i}" for i in range(400)), nodes_per_host=2)
    results: list[DiscoveryResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(discover_hosts(admin_ctx))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    new = [pair for result in results for pair in result.new_hosts]
    assert len(new) == len(set(new)) == 800
    assert all(result.conflicts == [] for result in results)
    count = _execute(api_db, sa.select(sa.func.count()).select_from(host_mappings))[0][0]
    assert count == 800
    assert all(unmapped_nodes(cell) == [] for cell in cells)


# -- periodic discovery ----------------------------------------------------------


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_periodic_discovery_is_off_by_default(conf) -> None:
    handle = start_periodic_discovery()
    assert handle.interval == -1 and not handle.enabled and not handle.running
    handle.stop()
    assert not PeriodicDiscovery(0).start().running


def test_periodic_discovery_reads_the_interval_option(conf, api_db) -> None:
    conf.set_override("discover_hosts_in_cells_interval", 3600, group="scheduler")
    handle = start_periodic_discovery()
    try:
        assert handle.running and handle.interval == 3600
        assert _wait_for(lambda: handle.runs >= 1)  # the first round runs at once
    finally:
        started = time.monotonic()
        handle.stop()
    assert not handle.running and time.monotonic() - started < 5


def test_periodic_discovery_maps_new_hosts_and_survives_errors(
    make_cells, admin_ctx: RequestContext, monkeypatch, caplog
) -> None:
    (cell,) = make_cells(1)
    real = discovery.discover_hosts
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> DiscoveryResult:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom mysql+pymysql://admin:s3cret@db/api")
        return real(*args, **kwargs)

    monkeypatch.setattr(discovery, "discover_hosts", flaky)
    with caplog.at_level(logging.ERROR, logger="cellrouter.manage.discovery"):
        handle = start_periodic_discovery(interval=0.02)
        try:
            assert _wait_for(lambda: handle.runs >= 2)
            add_nodes(cell, "late-host")
            assert _wait_for(lambda: "late-host" in host_cells(admin_ctx))
        finally:
            handle.stop()
    assert not handle.running
    assert "boom" in caplog.text and "s3cret" not in caplog.text
    assert unmapped_nodes(cell) == []
