"""Benchmark of the operator verbs on SQLite (a plain script, not a test).

* ``map_instances`` of a cell holding 1000 and 100000 unmapped instances;
* ``discover_hosts`` of a cell holding 300 and 10000 new compute hosts.

Every run gets a fresh cell and a fresh, empty API database, and is timed
three ways: ``in-process`` (the library call in a warmed-up
process, as a service makes it: API engine open, the new cell's engine
cold; GC off), ``process`` (a fresh ``python -c`` process, interpreter
start included, like an operator running a command) and ``imports+run``
(that process from its first import to the end). Medians are reported;
the machine's load average is printed since other work skews timings. The speed-up is printed
against two REFERENCE numbers that are NOT measured by this script: Nova's
``nova-manage cell_v2`` mapping 1000 instances in about 3.0 s and
discovering 300 hosts in about 2.25 s on the same machine (larger sizes
extrapolated linearly from those). Target: >= 100x.

    python bench/bench_operators.py [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

import cellrouter.conf
from cellrouter.cells import registry
from cellrouter.cells.context import get_admin_context
from cellrouter.db import migration
from cellrouter.db.cell_schema import compute_nodes, instances
from cellrouter.db.types import utcnow
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.manage.discovery import discover_hosts
from cellrouter.manage.instance_mapper import map_instances

#: REFERENCE numbers (Nova, measured elsewhere on this machine; not by this script).
NOVA_MAP_1000_S = 3.0
NOVA_DISCOVER_300_S = 2.25
TARGET_SPEEDUP = 100.0

_CHILD = textwrap.dedent(
    """
    import sys, time
    t0 = time.perf_counter()
    import cellrouter.conf
    from cellrouter.cells.context import get_admin_context
    from cellrouter.manage.discovery import discover_hosts
    from cellrouter.manage.instance_mapper import map_instances
    conf = cellrouter.conf.setup([], default_config_files=[])
    conf.set_override("connection", sys.argv[1], group="api_database")
    if sys.argv[2] == "map":
        r = map_instances(get_admin_context(), sys.argv[3])
        assert r.complete, r
    else:
        r = discover_hosts(get_admin_context(), cell_uuid=sys.argv[3])
        assert not r.conflicts and not r.failed_cells, r
    print(time.perf_counter() - t0)
    """
)


class World:
    """Temporary SQLite databases: an API database (fresh one on demand) and cells."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = cellrouter.conf.setup([], default_config_files=[])
        self.ctx = get_admin_context()
        self.dbs = 0
        self.api_url = ""
        self.fresh_api()

    def _path(self, label: str) -> str:
        self.dbs += 1
        return f"sqlite:///{self.root / f'{label}{self.dbs}.db'}"

    def fresh_api(self) -> None:
        """Start over with an empty, migrated API database (every timed run gets one)."""
        self.api_url = self._path("api")
        migration.sync("api", self.api_url)
        self.conf.set_override("connection", self.api_url, group="api_database")

    def new_cell(self) -> CellMapping:
        url = self._path("cell")
        migration.sync("cell", url)
        return CellMapping.create(
            self.ctx, name=f"cell{self.dbs}", database_connection=url, transport_url="fake://x/"
        )

    def seed(self, cell: CellMapping, table: sa.Table, rows: list[dict[str, object]]) -> None:
        engine = sa.create_engine(cell.database_connection, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sa.insert(table), rows)
        finally:
            engine.dispose()

    def instances_cell(self, count: int) -> CellMapping:
        cell = self.new_cell()
        now = utcnow()
        rows: list[dict[str, object]] = [
            {
                "uuid": str(uuidlib.uuid4()),
                "project_id": f"p{i % 100}",
                "user_id": f"u{i % 500}",
                "created_at": now,
                "deleted": 0,
            }
            for i in range(count)
        ]
        self.seed(cell, instances, rows)
        return cell

    def hosts_cell(self, count: int) -> CellMapping:
        cell = self.new_cell()
        tag = uuidlib.uuid4().hex[:8]
        rows: list[dict[str, object]] = [
            {"uuid": str(uuidlib.uuid4()), "host": f"{tag}-cmp{i:05d}", "hypervisor_hostname": "n"}
            for i in range(count)
        ]
        self.seed(cell, compute_nodes, rows)
        return cell


def _in_process(fn: Callable[[], object]) -> float:
    """One call, as a running service makes it (API engine warm, the new cell's engine cold)."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started
    finally:
        gc.enable()


def _fresh_process(world: World, verb: str, cell: CellMapping) -> tuple[float, float]:
    """(wall time of the whole process, time from first import to done)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, world.api_url, verb, cell.uuid],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, float(out.stdout.strip().splitlines()[-1])


def _report(label: str, size: int, unit: str, reference_s: float, times: list[float]) -> float:
    best = min(times)
    runs = ", ".join(f"{t * 1000:.1f}" for t in times)
    speedup = reference_s / statistics.median(times)
    print(
        f"  {label:<11} runs [ms]: {runs:<44} median {statistics.median(times) * 1000:8.1f} ms"
        f"  {size / best:10.0f} {unit}/s (best)  speed-up vs REFERENCE {speedup:7.1f}x"
    )
    return speedup


def bench(world: World, runs: int, map_sizes: list[int], host_sizes: list[int]) -> bool:
    ok = True
    print(
        f"REFERENCE (Nova, not measured here): map_instances 1000 in {NOVA_MAP_1000_S} s, "
        f"discover_hosts 300 in {NOVA_DISCOVER_300_S} s; larger sizes extrapolated linearly.\n"
    )
    cases = [
        ("map_instances", "map", n, "instances", NOVA_MAP_1000_S * n / 1000) for n in map_sizes
    ]
    cases += [
        ("discover_hosts", "discover", n, "hosts", NOVA_DISCOVER_300_S * n / 300)
        for n in host_sizes
    ]
    # warm-up: statement compilation is cached per process, as in a running service
    map_instances(world.ctx, world.instances_cell(10).uuid)
    discover_hosts(world.ctx, cell_uuid=world.hosts_cell(10).uuid)
    for name, verb, size, unit, reference in cases:
        make = world.instances_cell if verb == "map" else world.hosts_cell
        inproc, process, work = [], [], []
        for _ in range(runs):
            world.fresh_api()
            cell = make(size)
            if verb == "map":
                inproc.append(_in_process(lambda c=cell: map_instances(world.ctx, c.uuid)))
            else:
                inproc.append(
                    _in_process(lambda c=cell: discover_hosts(world.ctx, cell_uuid=c.uuid))
                )
            world.fresh_api()
            cell = make(size)
            wall, inner = _fresh_process(world, verb, cell)
            process.append(wall)
            work.append(inner)
        load = os.getloadavg()[0]
        print(f"{name} of {size} new {unit} (reference {reference:.2f} s; load avg {load:.1f}):")
        speedup = _report("in-process", size, unit, reference, inproc)
        _report("process", size, unit, reference, process)
        _report("imports+run", size, unit, reference, work)
        if speedup < TARGET_SPEEDUP:
            ok = False
            print(f"  !! in-process speed-up below the {TARGET_SPEEDUP:.0f}x target")
        print()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh cells per size (default 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args(argv)
    map_sizes = [1000] if args.quick else [1000, 100000]
    host_sizes = [300] if args.quick else [300, 10000]
    with tempfile.TemporaryDirectory(prefix="bench_operators_") as tmp:
        world = World(Path(tmp))
        try:
            ok = bench(world, args.runs, map_sizes, host_sizes)
        finally:
            registry.reset()
    print("target met" if ok else "target MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
