"""Cross-cell list at scale, cell0 included (SQLite files, one run; ratios only).

    python bench/bench_scale.py [--rows 6000] [--rounds 6] [--repeat 8] [--max-cells 1000]
                                [--mysql mysql+pymysql://USER@HOST:PORT/?ssl_disabled=true]

Measures, in this process and this run:

* 3 cells x rows/3 instances plus an empty cell0 against the plain
  single-database query of the same rows (SQLAlchemy Core, Rows): the first
  page (limit 1000, ``created_at desc``), as Rows and as dicts, and a full walk
  (target <= 1.5x each), also with every marker read in its cell (as when
  another API process handed it out);
* the project-filtered first page (one of 20 projects) against the same
  filtered query on one database;
* first-page latency, worker threads, open cell connections and RSS with the
  same total rows over 1, 4, 16, 64, 256 and 1000 cells (+ an empty cell0;
  target: 64 cells <= 2x 4 cells), and the 64-cell page again once its
  instance mappings' creation times are moved off their instances' (the page
  shares are then off here and there).

Cases compared with each other are timed in interleaved rounds (each round
takes every case in turn; the best of each is kept), so the drift of a shared
machine hits both sides of a ratio alike. A target ratio is given twice: the
ratio of the two cases' bests, and the median of the rounds' own ratios (each
round's bests, seconds apart), which a burst of load in a few rounds moves
less. Cell databases are copies of one migrated SQLite file, in a temporary
directory.
With ``--mysql`` (a server URL; its database part is ignored), the comparisons
(first page, walk, project page) run again on that MariaDB/MySQL server, in
uniquely named databases (``crbench_<pid>_<hex>_*``) that are dropped at the
end, even on failure (exit status 1 with a message when the server cannot be
used); the scaling table stays SQLite-only.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import datetime
import operator
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench_listing import random_instance, store_instances

from cellrouter import conf as cr_conf
from cellrouter import workers
from cellrouter.across.instance_counts import instance_counts
from cellrouter.across.instance_list import _INSTANCES, list_instances
from cellrouter.across.sorting import after_marker, build_sort_spec, order_by
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, get_admin_context
from cellrouter.db import dberror, migration
from cellrouter.db.api_schema import instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping
from cellrouter.url import mask_url

PAGE = 1000
SCALING_CELLS = (1, 4, 16, 64, 256, 1000)


class Databases(abc.ABC):
    """Where a benchmark's databases live; :meth:`close` drops what was made."""

    label: str

    @abc.abstractmethod
    def api(self, name: str) -> str:
        """URL of a new, migrated API database."""

    @abc.abstractmethod
    def cell(self, name: str) -> str:
        """URL of a new, migrated, empty cell database."""

    def close(self) -> None:
        """Release the process's engines (and drop the databases, on a server)."""
        registry.reset()


class SQLiteDatabases(Databases):
    """Files in ``root``; cells are copies of one migrated template."""

    label = "SQLite"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = root / "template.db"
        migration.sync("cell", f"sqlite:///{self.template}")

    def api(self, name: str) -> str:
        url = f"sqlite:///{self.root / f'{name}-api.db'}"
        migration.sync("api", url)
        return url

    def cell(self, name: str) -> str:
        path = self.root / f"{name}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"


class ServerDatabases(Databases):
    """Uniquely named databases on the MariaDB/MySQL server of ``server_url``."""

    label = "MariaDB"

    def __init__(self, server_url: str) -> None:
        url = sa.engine.make_url(server_url)
        if url.get_backend_name() not in ("mysql", "mariadb"):
            raise SystemExit(f"--mysql: not a MySQL/MariaDB URL: {mask_url(server_url)}")
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        self.server = url
        self.prefix = f"crbench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []
        self.admin = sa.create_engine(
            url.set(database=None), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )

    def _create(self, name: str, tier: str) -> str:
        database = f"{self.prefix}_{name}".replace("-", "_")
        with self.admin.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
        self.names.append(database)
        url = self.server.set(database=database).render_as_string(hide_password=False)
        migration.sync(tier, url)  # type: ignore[arg-type]
        return url

    def api(self, name: str) -> str:
        return self._create(f"{name}_api", "api")

    def cell(self, name: str) -> str:
        return self._create(name, "cell")

    def close(self) -> None:
        super().close()
        with self.admin.connect() as conn:
            for database in reversed(self.names):
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        self.names.clear()
        self.admin.dispose()


class World:
    """An API database, an empty cell0 and ``cells`` cells sharing ``rows`` instances."""

    def __init__(self, dbs: Databases, name: str, cells: int, rows: int) -> None:
        self.api_url = dbs.api(name)
        self.use()
        ctx = get_admin_context()
        rng = random.Random(cells)
        self.cells: list[CellMapping] = []
        api = sa.create_engine(self.api_url)
        for index in range(cells + 1):
            url = dbs.cell(f"{name}-cell{index}")
            cell = CellMapping.create(
                ctx,
                name=f"{name}-{index}",
                database_connection=url,
                transport_url="none:///",
                uuid=CELL0_UUID if index == 0 else None,
            )
            self.cells.append(cell)
            if index == 0:
                continue  # cell0: empty
            share = rows // cells + (1 if index <= rows % cells else 0)
            data = [random_instance(rng, ("active",)) for _ in range(share)]
            if data:
                store_instances(api, cell, data)
        api.dispose()

    def use(self) -> None:
        cr_conf.get_conf().set_override("connection", self.api_url, group="api_database")
        CACHED_INDEX.reset()
        instance_counts().reset()

    def skew_mappings(self, seconds: float, seed: int = 0) -> None:
        """Move each mapping's creation time off its instance's by up to ``seconds``
        either way, as when instances are created some time after they are mapped."""
        rng = random.Random(seed)
        api = sa.create_engine(self.api_url)
        im = instance_mappings
        with api.begin() as conn:
            rows = conn.execute(sa.select(im.c.id, im.c.created_at)).all()
            conn.execute(
                sa.update(im).where(im.c.id == sa.bindparam("key")),
                [
                    {
                        "key": key,
                        "created_at": created
                        + datetime.timedelta(seconds=rng.uniform(-seconds, seconds)),
                    }
                    for key, created in rows
                ],
            )
        api.dispose()


def best(fn: Callable[[], object], repeat: int) -> float:
    """Minimum wall seconds of ``repeat`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class Timings(dict[str, float]):
    """The best wall seconds of each case, and each round's best (:attr:`rounds`)."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__(dict.fromkeys(names, float("inf")))
        self.rounds: dict[str, list[float]] = {name: [] for name in self}

    def add(self, name: str, seconds: float) -> None:
        self.rounds[name].append(seconds)
        self[name] = min(self[name], seconds)

    def median_ratio(self, case: str, base: str) -> float:
        """The median of the rounds' ratios of ``case`` to ``base``."""
        rounds = zip(self.rounds[case], self.rounds[base], strict=True)
        return statistics.median(a / b for a, b in rounds)

    def versus(self, case: str, base: str, what: str, target: str = "") -> str:
        """``case`` against ``base``: the ratio of their bests and the rounds' median ratio."""
        target = f" (target <= {target})" if target else ""
        return (
            f"{self[case] / self[base]:.2f}x {what}{target}; "
            f"rounds' median {self.median_ratio(case, base):.2f}x"
        )


def interleaved(
    cases: dict[str, Callable[[], object]],
    rounds: int,
    repeat: int,
    setup: Callable[[str], object] | None = None,
) -> Timings:
    """Best wall seconds of each case, measured in ``rounds`` rounds that take the cases
    in turn (``setup(name)`` first, then ``repeat`` calls after a warm-up): drift of a
    shared machine hits every case alike, so ratios between them hold."""
    found = Timings(cases)
    for _ in range(rounds):
        for name, fn in cases.items():
            if setup is not None:
                setup(name)
            found.add(name, best(fn, repeat))
    return found


def raw_page(engine: sa.Engine, project: str | None = None) -> Callable[[str | None], list[Any]]:
    """The same page as one plain Core query on one database: (marker uuid) -> rows."""
    spec = build_sort_spec(instances, ["created_at"], ["desc"])
    cols = [instances.c[key] for key in spec.keys]
    base = sa.select(instances).where(instances.c.deleted == 0)
    if project is not None:
        base = base.where(instances.c.project_id == project)
    by_uuid = sa.select(*cols).where(instances.c.uuid == sa.bindparam("u"))

    def run(marker: str | None) -> list[Any]:
        with engine.connect() as conn:
            stmt = base
            if marker is not None:
                after = tuple(conn.execute(by_uuid, {"u": marker}).one())
                stmt = stmt.where(after_marker(spec, cols, after, conn.dialect))
            stmt = stmt.order_by(*order_by(spec, cols, conn.dialect)).limit(PAGE)
            return list(conn.execute(stmt).all())

    return run


def raw_walk(run: Callable[[str | None], list[Any]]) -> int:
    marker, seen = None, 0
    while True:
        rows = run(marker)
        seen += len(rows)
        if len(rows) < PAGE:
            return seen
        marker = rows[-1].uuid


def walk(ctx: RequestContext, as_dicts: bool, markers_known: bool = True) -> int:
    """Every page, each after the last one's marker. Not ``markers_known``: the lister
    forgets the markers it handed out, as when another API process served the page
    before (each marker is then read in its cell, as Nova does on every page)."""
    marker, seen = None, 0
    while True:
        if not markers_known:
            _INSTANCES._issued_markers().clear()
        page = list_instances(ctx, limit=PAGE, marker=marker, as_dicts=as_dicts)
        seen += len(page.rows)
        marker = page.next_marker
        if marker is None:
            return seen


def floor_page(world: World) -> Callable[[], list[Any]]:
    """The least work a first page over ``world``'s cells can be: plain Core, one
    pooled engine per cell, each cell asked for exactly the rows it gives the page
    (plus the one that shows where it stops), one after another, then one sort."""
    ctx = get_admin_context()
    page = list_instances(ctx, limit=PAGE, as_dicts=False)
    on_page = {row.uuid for row in page.rows}
    spec = build_sort_spec(instances, ["created_at"], ["desc"])
    cols = [instances.c[key] for key in spec.keys]
    asks: list[tuple[sa.Engine, int]] = []
    for cell in world.cells[1:]:
        engine = sa.create_engine(cell.database_connection)
        with engine.connect() as conn:
            held = {uuid for (uuid,) in conn.execute(sa.select(instances.c.uuid))}
        asks.append((engine, len(held & on_page) + 1))
    stmt = (
        sa.select(instances)
        .where(instances.c.deleted == 0)
        .order_by(*order_by(spec, cols, asks[0][0].dialect))
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    created, uuid = instances.c.keys().index("created_at"), instances.c.keys().index("uuid")

    def run() -> list[Any]:
        pool: list[Any] = []
        for engine, size in asks:
            with engine.connect() as conn:
                pool += conn.execute(stmt, {"limit": size}).all()
        pool.sort(key=operator.itemgetter(uuid))
        pool.sort(key=operator.itemgetter(created), reverse=True)
        return pool[:PAGE]

    assert [row.uuid for row in run()] == [row.uuid for row in page.rows]
    return run


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def line(label: str, value: str, note: str = "") -> None:
    print(f"{label:<56} {value:>12}  {note}", flush=True)


def compare(dbs: Databases, rows: int, rounds: int, repeat: int) -> None:
    """First page, full walk and project page: 3 cells + cell0 against one database."""
    ctx = get_admin_context()
    t0 = time.perf_counter()
    single = World(dbs, "single", 1, rows)
    three = World(dbs, "three", 3, rows)
    print(f"# {dbs.label}: setup {time.perf_counter() - t0:.1f}s; {rows} instances")
    engine = sa.create_engine(single.cells[1].database_connection)
    three.use()
    try:
        raw, raw_p = raw_page(engine), raw_page(engine, "project-3")
        assert walk(ctx, False) == rows == raw_walk(raw)
        pages = interleaved(
            {
                "raw": lambda: raw(None),
                "rows": lambda: list_instances(ctx, limit=PAGE, as_dicts=False),
                "dicts": lambda: list_instances(ctx, limit=PAGE),
                "raw project": lambda: raw_p(None),
                "project": lambda: list_instances(
                    ctx, limit=PAGE, filters={"project_id": "project-3"}, as_dicts=False
                ),
            },
            rounds,
            repeat,
        )
        walks = interleaved(
            {
                "raw": lambda: raw_walk(raw),
                "rows": lambda: walk(ctx, False),
                "dicts": lambda: walk(ctx, True),
                "markers read": lambda: walk(ctx, False, markers_known=False),
            },
            rounds,
            repeat,  # as many as the pages: a walk meets more of the noise
        )
    finally:
        engine.dispose()
    db = dbs.label
    raw_first, raw_all, raw_proj = pages["raw"], walks["raw"], pages["raw project"]
    line(f"first page, plain Core query on one DB ({db})", f"{raw_first * 1e3:.2f} ms")
    line(
        f"first page, 3 cells + empty cell0 (Rows, {db})",
        f"{pages['rows'] * 1e3:.2f} ms",
        pages.versus("rows", "raw", "one DB", "1.5x"),
    )
    line(
        f"first page, 3 cells + empty cell0 (dicts, {db})",
        f"{pages['dicts'] * 1e3:.2f} ms",
        pages.versus("dicts", "raw", "one DB"),
    )
    line(f"full walk, plain Core keyset pages on one DB ({db})", f"{raw_all * 1e3:.1f} ms")
    line(
        f"full walk, 3 cells + cell0 (Rows, {db})",
        f"{walks['rows'] * 1e3:.1f} ms",
        walks.versus("rows", "raw", "one DB", "1.5x"),
    )
    line(
        f"full walk, 3 cells + cell0 (dicts, {db})",
        f"{walks['dicts'] * 1e3:.1f} ms",
        walks.versus("dicts", "raw", "one DB"),
    )
    line(
        f"full walk, every marker read in its cell (Rows, {db})",
        f"{walks['markers read'] * 1e3:.1f} ms",
        walks.versus("markers read", "raw", "one DB"),
    )
    line(f"project page, plain Core query on one DB ({db})", f"{raw_proj * 1e3:.2f} ms")
    line(
        f"project page, 3 cells + cell0 (Rows, {db})",
        f"{pages['project'] * 1e3:.2f} ms",
        pages.versus("project", "raw project", "one DB"),
    )
    print()


def scaling(dbs: SQLiteDatabases, max_cells: int, rows: int, rounds: int, repeat: int) -> None:
    """First-page latency, threads, connections and RSS as the same rows spread wider.

    Up to 64 cells the worlds live side by side and are timed in interleaved rounds
    (the 64-to-4 ratio is the target); 256 and 1000 cells are built and timed after,
    one at a time.
    """
    ctx = get_admin_context()
    opts = cr_conf.get_conf().cells
    print(
        f"# scaling: {rows} rows in all; max_worker_threads="
        f"{opts.max_worker_threads}, max_cell_connections={opts.max_cell_connections}"
    )
    counts = [count for count in SCALING_CELLS if count <= max_cells]
    side_by_side = [count for count in counts if count <= 64]
    worlds: dict[int, World] = {}
    notes: dict[int, str] = {}

    def build(count: int) -> None:
        rss_before, connections_before = rss_mb(), registry.open_connections()
        world = worlds[count] = World(dbs, f"scale{count}", count, rows)
        start = time.perf_counter()
        cold = list_instances(ctx, limit=PAGE, as_dicts=False)
        cold_s = time.perf_counter() - start
        assert not cold.partial, cold.failed_cells
        best(lambda: list_instances(ctx, limit=PAGE, as_dicts=False), 2)
        threads, _ = workers.stats()
        opened = registry.open_connections() - connections_before
        notes[count] = (
            f"cold {cold_s * 1e3:.0f} ms; threads {threads} (all {threading.active_count()})"
            f", connections +{opened} (open {registry.open_connections()})"
            f", RSS {rss_mb():.0f} MB (+{rss_mb() - rss_before:.1f})"
        )
        del world

    def first_page() -> object:
        return list_instances(ctx, limit=PAGE, as_dicts=False)

    for count in side_by_side:
        build(count)
    cases: dict[str, Callable[[], object]] = {str(count): first_page for count in side_by_side}
    floors = [count for count in (4, 64) if count in side_by_side]
    for count in floors:
        worlds[count].use()
        cases[f"floor {count}"] = floor_page(worlds[count])
    figures = interleaved(
        cases, rounds, repeat, setup=lambda name: worlds[int(name.split()[-1])].use()
    )
    for count in side_by_side:
        figure = figures[str(count)]
        note = notes[count]
        if "4" in figures:
            versus = figures.versus(str(count), "4", "4 cells", "2x" if count == 64 else "")
            note += f"; {versus}"
        line(f"first page, {count} cells + cell0", f"{figure * 1e3:.1f} ms", note)
    if len(floors) == 2:
        low, high = figures["floor 4"], figures["floor 64"]
        for count, figure in zip(floors, (low, high), strict=True):
            line(
                f"floor: {count} bare Core queries of exactly the page's rows",
                f"{figure * 1e3:.1f} ms",
                f"{figures[str(count)] / figure:.2f}x of it listed by cellrouter",
            )
        line(
            "floor: 64 cells against 4 cells",
            f"{high / low:.2f}x",
            f"rounds' median {figures.median_ratio('floor 64', 'floor 4'):.2f}x; 64 bare"
            f" queries against cellrouter's 4-cell page: {high / figures['4']:.2f}x",
        )
    if 64 in worlds and "4" in figures:
        # Mapping times off their instances' by up to one mean gap between two
        # instances' creation times (3 years / rows): neighbours often swap, so the
        # page shares are off by a row here and there and some cells run short.
        gap = 3 * 365 * 86400 / rows
        worlds[64].skew_mappings(gap)
        worlds[64].use()
        figure = best(first_page, max(3, repeat))
        line(
            "first page, 64 cells, mapping times +-1 gap off",
            f"{figure * 1e3:.1f} ms",
            f"{figure / figures['4']:.2f}x 4 cells; {figure / figures['64']:.2f}x aligned",
        )
    for count in counts:
        if count in side_by_side:
            continue
        registry.reset()  # the smaller worlds' engines go
        worlds.clear()
        build(count)
        worlds[count].use()
        figure = best(lambda: list_instances(ctx, limit=PAGE, as_dicts=False), max(3, repeat))
        note = notes[count]
        if "4" in figures:
            note += f"; {figure / figures['4']:.2f}x 4 cells"
        line(f"first page, {count} cells + cell0", f"{figure * 1e3:.1f} ms", note)


@contextlib.contextmanager
def opened(dbs: Databases) -> Iterator[Databases]:
    """``dbs``, closed (its databases dropped) however the block ends."""
    try:
        yield dbs
    finally:
        dbs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    parser.add_argument("--repeat", type=int, default=8, help="calls per case and round")
    parser.add_argument("--max-cells", type=int, default=1000)
    parser.add_argument("--scale-rows", type=int, default=6000, help="total rows when scaling")
    parser.add_argument(
        "--mysql", metavar="URL", help="also compare on this MariaDB/MySQL server (server URL)"
    )
    args = parser.parse_args()
    conf = cr_conf.setup([], default_config_files=[])
    conf.set_override("list_cells_by_mappings", True, group="cells")  # one query per cell

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cellrouter-bench-scale-") as tmp:
        sqlite = SQLiteDatabases(Path(tmp))
        with opened(sqlite):
            compare(sqlite, args.rows, args.rounds, args.repeat)
            if args.mysql:
                server = ServerDatabases(args.mysql)
                try:
                    with opened(server):
                        compare(server, args.rows, args.rounds, args.repeat)
                except sa.exc.OperationalError as exc:
                    raise SystemExit(
                        f"bench_scale: MariaDB at {mask_url(args.mysql)}: {dberror.describe(exc)}"
                    ) from None
            scaling(sqlite, args.max_cells, args.scale_rows, args.rounds, args.repeat)
    print(f"\n# total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
