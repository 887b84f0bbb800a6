"""Cross-cell listing and scatter-gather benchmark (SQLite, one run, one table).

    python bench/bench_listing.py [--rows-per-cell 2000] [--repeat 15]

Measures, in this process and this run:

* the first page (limit 1000, ``created_at desc``) over 3 cells x N instances
  against the same list on one database holding all 3 x N rows (target <= 2x;
  Nova 34 takes about 570 ms here);
* a full walk of all pages (limit 1000) over both layouts;
* ``scatter_gather_all_cells`` over the 3 cells with a trivial fn (Nova about
  0.38 ms; target <= half);
* the same first page with 20 ms added to every query (a remote database): the
  cells are asked in parallel, so the latency is paid once, not once per cell;
* the first page over 1, 4, 16 and 64 cells of N instances each.

Every deployment lives in a temporary directory: an SQLite API database and
SQLite cell databases migrated with ``cellrouter.db.migration``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The repository itself, whatever the current directory (run as a plain script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import event  # noqa: E402

from cellrouter import conf as cr_conf  # noqa: E402
from cellrouter.across.instance_list import list_instances  # noqa: E402
from cellrouter.across.lister import ListResult  # noqa: E402
from cellrouter.across.scatter import scatter_gather_all_cells  # noqa: E402
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, get_admin_context  # noqa: E402
from cellrouter.cells.instance import deleted_filter  # noqa: E402
from cellrouter.db import migration  # noqa: E402
from cellrouter.db.api_schema import instance_mappings  # noqa: E402
from cellrouter.db.cell_schema import instances  # noqa: E402
from cellrouter.index.cell_mapping import CellMapping  # noqa: E402

PAGE = 1000
#: Simulated network round trip per query, to show cells are asked in parallel.
LATENCY = 0.02
NOVA_FIRST_PAGE_MS = 570.0
NOVA_SCATTER_MS = 0.38
SCALING_CELLS = (1, 4, 16, 64)
_EPOCH = datetime.datetime(2024, 1, 1)
_STATES = ("active", "stopped", "error", "building")


class Deployment:
    """An API database and its cells, each cell holding ``rows_per_cell`` instances."""

    def __init__(self, root: Path, name: str, cells: int, rows_per_cell: int, seed: int) -> None:
        self.api_url = f"sqlite:///{root / f'{name}-api.db'}"
        migration.sync("api", self.api_url)
        self.use()
        ctx = get_admin_context()
        rng = random.Random(seed)
        self.cells: list[CellMapping] = []
        api = sa.create_engine(self.api_url)
        for index in range(cells):
            url = f"sqlite:///{root / f'{name}-cell{index}.db'}"
            migration.sync("cell", url)
            cell = CellMapping.create(
                ctx, name=f"{name}-{index}", database_connection=url, transport_url="none:///"
            )
            self.cells.append(cell)
            store_instances(api, cell, [random_instance(rng) for _ in range(rows_per_cell)])
        api.dispose()

    def use(self) -> None:
        """Make this deployment's API database the configured one."""
        cr_conf.get_conf().set_override("connection", self.api_url, group="api_database")


def store_instances(api: sa.Engine, cell: CellMapping, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` into ``cell``'s ``instances`` and map each of them in ``api``
    (one multi-row INSERT per batch on each side)."""
    engine = sa.create_engine(cell.database_connection)
    with engine.begin() as conn:
        conn.execute(sa.insert(instances), rows)
    engine.dispose()
    with api.begin() as conn:
        conn.execute(
            sa.insert(instance_mappings),
            [
                {
                    "instance_uuid": row["uuid"],
                    "cell_id": cell.id,
                    "project_id": row["project_id"],
                    "user_id": row["user_id"],
                    "created_at": row["created_at"],
                }
                for row in rows
            ],
        )


def random_instance(rng: random.Random, states: tuple[str, ...] = _STATES) -> dict[str, Any]:
    """An ``instances`` row with random values (a creation time in 2024-2027)."""
    created = _EPOCH + datetime.timedelta(microseconds=rng.randrange(10**13))
    return {
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "project_id": f"project-{rng.randrange(20)}",
        "user_id": f"user-{rng.randrange(50)}",
        "host": f"compute-{rng.randrange(100)}",
        "node": "node",
        "display_name": f"vm-{rng.randrange(10**6)}",
        "hostname": "vm",
        "vm_state": rng.choice(states),
        "power_state": 1,
        "memory_mb": 2048,
        "vcpus": 2,
        "root_gb": 20,
        "image_ref": "image",
        "availability_zone": "nova",
        "created_at": created,
        "updated_at": created,
        "launched_at": created,
        "deleted": 0,
    }


def best_and_median(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(min, median) wall seconds of ``repeat`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def first_page(ctx: RequestContext, cells: list[CellMapping]) -> ListResult:
    return list_instances(
        ctx, cells=cells, limit=PAGE, sort_keys=["created_at"], sort_dirs=["desc"]
    )


def walk(ctx: RequestContext, cells: list[CellMapping]) -> tuple[int, int]:
    """List every page; returns (rows seen, pages)."""
    marker, seen, pages = None, 0, 0
    while True:
        result = list_instances(ctx, cells=cells, limit=PAGE, marker=marker)
        seen, pages = seen + len(result.rows), pages + 1
        marker = result.next_marker
        if marker is None:
            return seen, pages


@contextlib.contextmanager
def network_latency(cells: list[CellMapping], seconds: float) -> Iterator[None]:
    """Every query to these cells waits ``seconds`` first, like a remote database would."""

    def delay(*_args: Any) -> None:
        time.sleep(seconds)

    engines = [registry.get(cell).engine for cell in cells]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", delay)
    try:
        yield
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", delay)


@contextlib.contextmanager
def cells_option(**overrides: Any) -> Iterator[None]:
    conf = cr_conf.get_conf()
    for name, value in overrides.items():
        conf.set_override(name, value, group="cells")
    try:
        yield
    finally:
        for name in overrides:
            conf.clear_override(name, group="cells")


def raw_query(ctx: RequestContext, url: str) -> Callable[[], list[Any]]:
    """The same page as one plain SQLAlchemy query on one database (no cellrouter)."""
    engine = sa.create_engine(url)
    condition = deleted_filter(ctx)  # None when ctx reads deleted rows too
    stmt = (
        sa.select(instances)
        .where(*(() if condition is None else (condition,)))
        .order_by(instances.c.created_at.desc(), instances.c.uuid.desc())
        .limit(PAGE)
    )

    def run() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(stmt).all())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-cell", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    n, repeat = args.rows_per_cell, args.repeat

    cr_conf.setup([], default_config_files=[])
    ctx = get_admin_context()

    def line(label: str, value: str, note: str = "") -> None:
        print(f"{label:<58} {value:>12}  {note}", flush=True)

    with tempfile.TemporaryDirectory(prefix="cellrouter-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        three = Deployment(root, "three", 3, n, seed=1)
        single = Deployment(root, "single", 1, 3 * n, seed=1)
        print(f"# setup {time.perf_counter() - t0:.1f}s; SQLite, {3 * n} instances\n")

        single.use()
        raw_min, _ = best_and_median(raw_query(ctx, single.cells[0].database_connection), repeat)
        one_min, one_med = best_and_median(lambda: first_page(ctx, single.cells), repeat)
        walk_one = best_and_median(lambda: walk(ctx, single.cells), max(3, repeat // 2))[0]
        with network_latency(single.cells, LATENCY):
            slow_one, _ = best_and_median(lambda: first_page(ctx, single.cells), repeat)
        three.use()
        three_min, three_med = best_and_median(lambda: first_page(ctx, three.cells), repeat)
        walk_three = best_and_median(lambda: walk(ctx, three.cells), max(3, repeat // 2))[0]
        rows_seen, pages = walk(ctx, three.cells)
        assert rows_seen == 3 * n, rows_seen
        with cells_option(list_batch_size=PAGE):  # every cell asked for the whole page
            whole_page, _ = best_and_median(lambda: first_page(ctx, three.cells), repeat)
        with cells_option(list_batch_strategy="fixed"):
            fixed, _ = best_and_median(lambda: first_page(ctx, three.cells), repeat)
        with network_latency(three.cells, LATENCY):
            slow_three, _ = best_and_median(lambda: first_page(ctx, three.cells), repeat)

        line("first page, plain SQLAlchemy query on one DB (Rows)", f"{raw_min * 1e3:.1f} ms")
        line("first page, list_instances on one DB (baseline)", f"{one_min * 1e3:.1f} ms")
        line(
            f"first page, list_instances over 3 cells x {n}",
            f"{three_min * 1e3:.1f} ms",
            f"{three_min / one_min:.2f}x one DB (target <= 2x); Nova ~{NOVA_FIRST_PAGE_MS:.0f} ms"
            f" = {NOVA_FIRST_PAGE_MS / 1e3 / three_min:.0f}x slower",
        )
        line(
            "  (medians: one DB / 3 cells)",
            f"{one_med * 1e3:.1f}/{three_med * 1e3:.1f}",
            f"{three_med / one_med:.2f}x",
        )
        line(
            "  same, 'distributed' asking each cell for all 1000 rows",
            f"{whole_page * 1e3:.1f} ms",
            f"{whole_page / one_min:.2f}x one DB",
        )
        line(
            "  same, 'fixed' strategy (batches of 100)",
            f"{fixed * 1e3:.1f} ms",
            f"{fixed / one_min:.2f}x one DB",
        )
        ms = LATENCY * 1e3
        line(f"first page, one DB, +{ms:.0f} ms per query", f"{slow_one * 1e3:.1f} ms")
        line(
            f"first page, 3 cells, +{ms:.0f} ms per query (in parallel)",
            f"{slow_three * 1e3:.1f} ms",
            f"{slow_three / slow_one:.2f}x one DB (sequential would add {2 * ms:.0f} ms)",
        )
        line(f"full walk ({pages} pages), one DB", f"{walk_one * 1e3:.1f} ms")
        line(
            "full walk, 3 cells",
            f"{walk_three * 1e3:.1f} ms",
            f"{walk_three / walk_one:.2f}x one DB",
        )

        calls = 3000
        scatter_gather_all_cells(ctx, _trivial)

        def scatter_many() -> None:
            for _ in range(calls):
                scatter_gather_all_cells(ctx, _trivial)

        scatter_min, _ = best_and_median(scatter_many, 3)
        per_call = scatter_min / calls
        line(
            "scatter_gather_all_cells, 3 cells, trivial fn",
            f"{per_call * 1e3:.3f} ms",
            f"{per_call * 1e3 / NOVA_SCATTER_MS:.2f}x Nova's {NOVA_SCATTER_MS} ms (target <= 0.5x)",
        )

        print()
        base: float | None = None
        for count in SCALING_CELLS:
            deployment = Deployment(root, f"scale{count}", count, n, seed=count)
            best, _ = best_and_median(functools.partial(first_page, ctx, deployment.cells), repeat)
            base = base or best
            line(
                f"first page over {count} cells x {n}",
                f"{best * 1e3:.1f} ms",
                f"{best / base:.2f}x 1 cell",
            )
    print(f"\n# total {time.perf_counter() - t0:.0f}s")


def _trivial(cctx: RequestContext) -> int:
    return 1


if __name__ == "__main__":
    main()
