"""Benchmark of ``db archive_deleted_rows --all-cells --until-complete`` (a script, not a test).

Three cells hold 100,000 soft-deleted instances in all (and a tenth as many
live ones between them), each with its child rows: extra, info cache, two
metadata, system metadata, a fault, a block device mapping, a virtual
interface, an action with two events (12 rows per instance). Every instance
is mapped in the API database, with a build request. The archive runs in
this process (as ``commands.archive_deleted_rows``, batches of ``--max-rows``)
and the script prints cell rows archived per second, and instances per second.

    python bench/bench_archive.py [--instances 100000] [--max-rows 1000] [MARIADB_URL]

``MARIADB_URL`` (e.g. ``mysql+pymysql://root@127.0.0.1/?ssl_disabled=true``):
run on that server, in databases created and dropped by the script; default:
SQLite files in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

import cellrouter.conf
from cellrouter.cells import registry
from cellrouter.db import cell_schema as cs
from cellrouter.db import migration
from cellrouter.db.api_schema import build_requests
from cellrouter.db.types import utcnow
from cellrouter.index import mapping_store
from cellrouter.index.api import NewInstanceMapping
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.manage import commands

CELLS = 3
LIVE_RATIO = 10  # one live instance per this many deleted
ROWS_PER_INSTANCE = 12
_CHUNK = 5000


@contextmanager
def databases(server: str | None) -> Iterator[Callable[[str], str]]:
    """``make(label) -> url`` of an empty database; all dropped afterwards."""
    made: list[str] = []
    if server is None:
        with tempfile.TemporaryDirectory(prefix="bench-archive-") as root:
            yield lambda label: f"sqlite:///{os.path.join(root, label)}.db"
        return
    base = sa.make_url(server)
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)

    def make(label: str) -> str:
        name = f"bench_archive_{os.getpid()}_{label}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
        made.append(name)
        return base.set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.begin() as conn:
            for name in made:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


def _rows_of(uuid: str, instance_id: int, deleted: bool, action_id: int) -> dict[str, list[Any]]:
    now = utcnow()
    rows: dict[str, list[Any]] = {
        "instances": [
            {
                "id": instance_id,
                "uuid": uuid,
                "project_id": "p",
                "host": "compute-1",
                "created_at": now,
                "deleted": instance_id if deleted else 0,
                "deleted_at": now if deleted else None,
            }
        ],
        "instance_extra": [{"instance_uuid": uuid, "flavor": "{}"}],
        "instance_info_caches": [{"instance_uuid": uuid, "network_info": "[]"}],
        "instance_metadata": [{"instance_uuid": uuid, "key": f"k{n}"} for n in range(2)],
        "instance_system_metadata": [{"instance_uuid": uuid, "key": "image_name"}],
        "instance_faults": [{"instance_uuid": uuid, "code": 500, "message": "x"}],
        "block_device_mapping": [{"instance_uuid": uuid, "boot_index": 0}],
        "virtual_interfaces": [{"instance_uuid": uuid, "address": uuid}],
        "instance_actions": [{"id": action_id, "instance_uuid": uuid, "action": "create"}],
        "instance_actions_events": [{"action_id": action_id, "event": "e"}] * 2,
    }
    return rows


def populate(cell: CellMapping, deleted: int) -> int:
    """``deleted`` soft-deleted instances and a tenth as many live ones; returns rows written."""
    engine = sa.create_engine(cell.database_connection, poolclass=sa.pool.NullPool)
    live = deleted // LIVE_RATIO
    total = deleted + live
    written = 0
    for start in range(0, total, _CHUNK):
        batch: dict[str, list[Any]] = {}
        mappings = []
        for n in range(start, min(start + _CHUNK, total)):
            uuid = str(uuidlib.uuid4())
            is_deleted = n % (LIVE_RATIO + 1) != 0 or n // (LIVE_RATIO + 1) >= live
            for table, rows in _rows_of(uuid, n + 1, is_deleted, n + 1).items():
                batch.setdefault(table, []).extend(rows)
            mappings.append(NewInstanceMapping(uuid, "p"))
        with engine.begin() as conn:
            for table, rows in batch.items():
                conn.execute(sa.insert(cs.metadata.tables[table]), rows)
                written += len(rows)
        mapping_store().create_instances(cell, mappings)
        now = utcnow()
        with sa.create_engine(cellrouter.conf.get_conf().api_database.connection).begin() as conn:
            requests = [
                {"instance_uuid": m.instance_uuid, "project_id": "p", "created_at": now}
                for m in mappings
            ]
            conn.execute(sa.insert(build_requests), requests)
    engine.dispose()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", nargs="?", help="a MariaDB server URL (default: SQLite)")
    parser.add_argument("--instances", type=int, default=100_000, help="deleted, in all")
    parser.add_argument("--max-rows", type=int, default=1000, help="the batch size")
    args = parser.parse_args()
    conf = cellrouter.conf.setup([], default_config_files=[])
    with databases(args.server) as make:
        api = make("api")
        migration.sync("api", api)
        conf.set_override("connection", api, group="api_database")
        cells = []
        for n in range(1, CELLS + 1):
            url = make(f"cell{n}")
            migration.sync("cell", url)
            cells.append(
                mapping_store().create_cell(
                    name=f"cell{n}", database_connection=url, transport_url=f"fake://cell{n}/"
                )
            )
        t0 = time.perf_counter()
        per_cell = [args.instances // CELLS + (n < args.instances % CELLS) for n in range(CELLS)]
        for cell, count in zip(cells, per_cell, strict=True):
            populate(cell, count)
        print(f"seeded {args.instances} deleted instances in {time.perf_counter() - t0:.1f} s")
        backend = "MariaDB" if args.server else "SQLite"
        t0 = time.perf_counter()
        result = commands.archive_deleted_rows(
            max_rows=args.max_rows, until_complete=True, all_cells=True
        )
        elapsed = time.perf_counter() - t0
        instances = sum(n for key, n in result.rows.items() if key.endswith(".instances"))
        assert instances == args.instances, (instances, args.instances)
        assert result.total == instances * ROWS_PER_INSTANCE, result.total
        assert result.rows["API_DB.instance_mappings"] == instances
        print(
            f"{backend}: archived {result.total} cell rows ({instances} instances) across "
            f"{CELLS} cells in {elapsed:.1f} s: {result.total / elapsed:,.0f} rows/s, "
            f"{instances / elapsed:,.0f} instances/s (batches of --max_rows {args.max_rows}; "
            f"+{result.rows['API_DB.instance_mappings']} mappings, "
            f"{result.rows['API_DB.build_requests']} build requests removed); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        registry.reset()


if __name__ == "__main__":
    main()
