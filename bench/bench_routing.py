"""Benchmark of the routing core on SQLite (a plain script, not a test).

Measures in one run, on >= 3 SQLite cells holding >= 10k mapped instances:

(a) the *show path*: ``InstanceMapping.get_by_instance_uuid`` + ``target_cell`` +
    ``cellrouter.cells.instance.get_instance`` of one instance, against a bare
    primary-key select of the same row on the same cell engine (Core, same
    ``with engine.connect()`` pattern). Target: show path <= 2.5x bare select.
(b) ``target_cell`` enter/exit on an already-connected cell. Target: <= 3 us.

Instances are picked at random from the whole set; every measurement is warmed
up first and reported as the median of several repeats (GC off while timing).
Each repeat runs every case on the same random sample, in rotated order, and
the show/bare ratio is the median of the per-repeat ratios, so a busy machine
slows both sides alike. The baselines use statements built once with bound
parameters (best-practice Core), not statements rebuilt per call.
If a target is missed (or with ``--profile``) the show path is taken apart step
by step and run under cProfile. Exit status 1 means a target was missed.

    python bench/bench_routing.py [--cells 4] [--instances 12000]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import cellrouter.conf
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, get_admin_context, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.db import migration
from cellrouter.db.api_schema import cell_mappings, instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.db.database import api_engine
from cellrouter.db.types import utcnow
from cellrouter.index.cell_mapping import JOINED_COLUMNS, CellMapping
from cellrouter.index.instance_mapping import InstanceMapping

SHOW_TARGET = 2.5  # show path / bare select
TARGET_CELL_TARGET_US = 3.0


class World:
    """The benchmark's API DB, cells and instances."""

    def __init__(
        self, root: Path, n_cells: int, n_instances: int, seed: int, api_url: str | None = None
    ) -> None:
        """``api_url``: an empty database for the API tier (default: SQLite in ``root``)."""
        self.conf = cellrouter.conf.setup([], default_config_files=[])
        api_url = api_url or f"sqlite:///{root / 'api.db'}"
        migration.sync("api", api_url)
        self.conf.set_override("connection", api_url, group="api_database")
        self.ctx: RequestContext = get_admin_context()
        self.cells: list[CellMapping] = []
        for index in range(1, n_cells + 1):
            url = f"sqlite:///{root / f'cell{index}.db'}"
            migration.sync("cell", url)
            self.cells.append(
                CellMapping.create(
                    self.ctx,
                    name=f"cell{index}",
                    database_connection=url,
                    transport_url=f"fake://cell{index}/",
                )
            )
        rng = random.Random(seed)
        now = utcnow()
        per_cell: list[list[dict[str, Any]]] = [[] for _ in self.cells]
        mappings: list[dict[str, Any]] = []
        #: instance uuid -> (cell index, primary key in that cell)
        self.where: dict[str, tuple[int, int]] = {}
        for n in range(n_instances):
            cell_index = n % n_cells
            iuuid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
            project = f"project-{n % 50}"
            per_cell[cell_index].append(
                {
                    "uuid": iuuid,
                    "project_id": project,
                    "user_id": "user",
                    "host": f"compute-{cell_index}-{n % 20}",
                    "node": "node",
                    "display_name": f"vm-{n}",
                    "vm_state": "active",
                    "memory_mb": 2048,
                    "vcpus": 2,
                    "created_at": now,
                    "deleted": 0,
                }
            )
            mappings.append(
                {
                    "instance_uuid": iuuid,
                    "cell_id": self.cells[cell_index].id,
                    "project_id": project,
                    "user_id": "user",
                    "queued_for_delete": False,
                    "created_at": now,
                }
            )
        for cell, rows in zip(self.cells, per_cell, strict=True):
            engine = registry.get(cell).engine
            with engine.begin() as conn:
                conn.execute(sa.insert(instances), rows)
                for row in conn.execute(sa.select(instances.c.uuid, instances.c.id)):
                    self.where[row.uuid] = (self.cells.index(cell), row.id)
        with api_engine().begin() as conn:
            conn.execute(sa.insert(instance_mappings), mappings)
        self.uuids = sorted(self.where)
        self.rng = rng

    def sample(self, count: int) -> list[str]:
        return [self.rng.choice(self.uuids) for _ in range(count)]


# -- the operations measured ---------------------------------------------------------


def show(world: World, instance_uuid: str) -> Any:
    mapping = InstanceMapping.get_by_instance_uuid(world.ctx, instance_uuid)
    assert mapping.cell_mapping is not None
    with target_cell(world.ctx, mapping.cell_mapping) as cctx:
        return get_instance(cctx, instance_uuid)


# The baselines are best-practice Core: a statement built once (so SQLAlchemy
# memoizes its cache key) and executed with a bound parameter. A statement built
# per call would cost ~2x more and make the show path look better than it is.
_BARE_PK = sa.select(instances).where(instances.c.id == sa.bindparam("pk"))
_BARE_API = sa.select(instance_mappings).where(
    instance_mappings.c.instance_uuid == sa.bindparam("instance_uuid")
)


def bare_select(engine: sa.Engine, pk: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(_BARE_PK, {"pk": pk}).first()


def mapping_only(world: World, instance_uuid: str) -> Any:
    return InstanceMapping.get_by_instance_uuid(world.ctx, instance_uuid)


def bare_api_select(engine: sa.Engine, instance_uuid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(_BARE_API, {"instance_uuid": instance_uuid}).first()


def breakdown_cases(
    world: World, engines: list[sa.Engine], api: sa.Engine
) -> dict[str, tuple[Callable[[Any], Any], Callable[[list[str]], Sequence[Any]]]]:
    """The show path taken apart, one added step at a time (for the profile report)."""
    joined = (
        sa.select(instance_mappings, *JOINED_COLUMNS)
        .select_from(
            instance_mappings.outerjoin(
                cell_mappings, instance_mappings.c.cell_id == cell_mappings.c.id
            )
        )
        .where(instance_mappings.c.instance_uuid == sa.bindparam("instance_uuid"))
    )
    by_uuid_alive = (
        sa.select(instances)
        .where(instances.c.uuid == sa.bindparam("u"))
        .where(instances.c.deleted == 0)
    )

    def api_joined(u: str) -> Any:
        with api.connect() as conn:
            return conn.execute(joined, {"instance_uuid": u}).first()

    def cell_by_uuid(a: tuple[sa.Engine, str]) -> Any:
        with a[0].connect() as conn:
            return conn.execute(by_uuid_alive, {"u": a[1]}).first()

    def cell_by_uuid_mappings(a: tuple[sa.Engine, str]) -> Any:
        with a[0].connect() as conn:
            return conn.execute(by_uuid_alive, {"u": a[1]}).mappings().first()

    def same(uuids: list[str]) -> list[str]:
        return uuids

    def rows_of(uuids: list[str]) -> list[Any]:
        return [api_joined(u) for u in uuids]

    def engine_and_uuid(uuids: list[str]) -> list[tuple[sa.Engine, str]]:
        return [(engines[world.where[u][0]], u) for u in uuids]

    def engine_and_pk(uuids: list[str]) -> list[tuple[sa.Engine, int]]:
        return [(engines[world.where[u][0]], world.where[u][1]) for u in uuids]

    return {
        "api: prepared select of instance_mappings": (lambda u: bare_api_select(api, u), same),
        "api: + join of cell_mappings (18 cols)": (api_joined, same),
        "api: get_by_instance_uuid (+ records)": (lambda u: mapping_only(world, u), same),
        "  InstanceMapping.from_row alone": (InstanceMapping.from_row, rows_of),
        "  CellMapping.from_row alone": (lambda r: CellMapping.from_row(r, "cm_"), rows_of),
        "  api_engine() alone (config read)": (lambda _: api_engine(), same),
        "cell: prepared select by pk": (lambda a: bare_select(*a), engine_and_pk),
        "cell: by uuid + deleted=0": (cell_by_uuid, engine_and_uuid),
        "cell: + .mappings()": (cell_by_uuid_mappings, engine_and_uuid),
        "  engine.connect() + close alone": (lambda a: a[0].connect().close(), engine_and_uuid),
    }


# -- timing --------------------------------------------------------------------------


def per_op_us(fn: Callable[[Any], Any], args: Sequence[Any]) -> float:
    """Microseconds per call of ``fn(arg)`` over ``args`` (GC off while timing)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for arg in args:
            fn(arg)
        elapsed = time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / len(args) / 1000.0


def measure(
    cases: dict[str, tuple[Callable[[Any], Any], Callable[[list[str]], Sequence[Any]]]],
    draw: Callable[[], list[str]],
    repeats: int,
) -> dict[str, list[float]]:
    """Per-op microseconds of every case, once per repeat.

    Each repeat draws one random sample of instance uuids that every case
    derives its arguments from, and runs the cases in a rotated order, so slow
    phases of a shared machine hit all cases alike.
    """
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    warm = draw()
    for fn, make_args in cases.values():  # warm up: pools, statement caches, page cache
        per_op_us(fn, make_args(warm))
    for repeat in range(repeats):
        uuids = draw()
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            fn, make_args = cases[name]
            samples[name].append(per_op_us(fn, make_args(uuids)))
    return samples


def profile(fn: Callable[[Any], Any], args: Sequence[Any], limit: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for arg in args:
        fn(arg)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


def world_parser(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark on a :class:`World` and its timing (shared)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--instances", type=int, default=12000)
    parser.add_argument("--ops", type=int, default=500, help="operations per repeat")
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--seed", type=int, default=20240607)
    return parser


def world_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parsed options; the world must hold >= 3 cells and >= 10000 instances."""
    args = parser.parse_args(argv)
    if args.cells < 3 or args.instances < 10000:
        parser.error("the benchmark is defined for >= 3 cells and >= 10000 instances")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = world_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="profile even if on target")
    parser.add_argument("--profile-lines", type=int, default=30)
    args = world_args(parser, argv)

    with tempfile.TemporaryDirectory(prefix="cellrouter-bench-") as tmp:
        t0 = time.perf_counter()
        world = World(Path(tmp), args.cells, args.instances, args.seed)
        print(
            f"setup: {args.cells} SQLite cells, {len(world.uuids)} mapped instances "
            f"({time.perf_counter() - t0:.1f} s); {args.repeats} repeats x {args.ops} ops, "
            f"median; Python {sys.version.split()[0]}, SQLAlchemy {sa.__version__}"
        )
        engines = [registry.get(cell).engine for cell in world.cells]
        api = api_engine()

        # Sanity: both paths read the same row.
        probe = world.uuids[0]
        cell_index, pk = world.where[probe]
        assert show(world, probe)["id"] == bare_select(engines[cell_index], pk).id

        def cell_of(u: str) -> int:
            return world.where[u][0]

        def pk_args(uuids: list[str]) -> list[tuple[sa.Engine, int]]:
            # the very rows the show path reads, by primary key on their cell engine
            return [(engines[cell_of(u)], world.where[u][1]) for u in uuids]

        targeted = {}
        for index, cell in enumerate(world.cells):
            with target_cell(world.ctx, cell) as cctx:
                targeted[index] = cctx

        def enter_exit(cell: CellMapping) -> None:
            with target_cell(world.ctx, cell):
                pass

        samples = measure(
            {
                "show path": (lambda u: show(world, u), lambda uuids: uuids),
                "bare pk select": (lambda a: bare_select(*a), pk_args),
                "mapping lookup only": (lambda u: mapping_only(world, u), lambda uuids: uuids),
                "bare api select": (lambda u: bare_api_select(api, u), lambda uuids: uuids),
                "get_instance (targeted)": (
                    lambda a: get_instance(*a),
                    lambda uuids: [(targeted[cell_of(u)], u) for u in uuids],
                ),
                "target_cell enter/exit": (
                    enter_exit,
                    lambda uuids: [world.cells[cell_of(u)] for u in uuids] * 5,
                ),
            },
            draw=lambda: world.sample(args.ops),
            repeats=args.repeats,
        )
        results = {name: statistics.median(values) for name, values in samples.items()}
        width = max(map(len, results))
        print()
        for name, us in results.items():
            spread = f"[{min(samples[name]):.2f} .. {max(samples[name]):.2f}]"
            print(f"{name:<{width}}  {us:9.2f} us/op  (min..max {spread})")

        def paired(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(samples[a], samples[b], strict=True))

        show_ratio = paired("show path", "bare pk select")
        tc = results["target_cell enter/exit"]
        print()
        print(
            f"show path / bare pk select        = {show_ratio:5.2f}x  "
            f"(target <= {SHOW_TARGET}x) {'OK' if show_ratio <= SHOW_TARGET else 'MISSED'}"
        )
        print(
            f"  mapping lookup / bare api select = "
            f"{paired('mapping lookup only', 'bare api select'):5.2f}x"
        )
        print(
            f"  get_instance / bare pk select    = "
            f"{paired('get_instance (targeted)', 'bare pk select'):5.2f}x"
        )
        print(
            f"target_cell enter/exit            = {tc:5.2f} us "
            f"(target <= {TARGET_CELL_TARGET_US} us) "
            f"{'OK' if tc <= TARGET_CELL_TARGET_US else 'MISSED'}"
        )
        missed = show_ratio > SHOW_TARGET or tc > TARGET_CELL_TARGET_US
        if missed or args.profile:
            print("\n== the show path step by step (median us/op) ==")
            steps = measure(
                breakdown_cases(world, engines, api),
                draw=lambda: world.sample(args.ops),
                repeats=max(11, args.repeats // 2),
            )
            for name, values in steps.items():
                print(f"{name:<40}  {statistics.median(values):8.2f}")
            sample = world.sample(args.ops)
            print(f"\n== cProfile: show path, {len(sample)} ops ==")
            print(profile(lambda u: show(world, u), sample, args.profile_lines))
            cells = [world.cells[cell_of(u)] for u in sample] * 5
            print(f"== cProfile: target_cell enter/exit, {len(cells)} ops ==")
            print(profile(enter_exit, cells, 15))
        registry.reset()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
