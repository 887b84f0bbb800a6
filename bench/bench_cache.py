"""Benchmark of the mapping cache on SQLite cells (a plain script, not a test).

Measures in one run, on the world of ``bench_routing.py`` (>= 3 SQLite cells,
>= 10k mapped instances):

(a) the show path (mapping lookup + ``target_cell`` + ``get_instance``) with
    a warm memory cache, against one bare primary-key select of the same row
    on the same pooled engine. Target: <= 1.3x.
(b) the mapping lookup alone through Redis and memcached (the real servers
    on 127.0.0.1; skipped when one is not reachable) and through the memory
    cache, each against the uncached lookup (the API database's select).
(c) ``cast_instance`` with a warm memory cache against an uncached one
    (``fake://`` transports: the cast itself is an in-process enqueue, so the
    difference is the routing; broker latency is not what is measured).

Every case reads through its own :class:`~cellrouter.index.cached_index.CachedIndex`,
swapped in with ``use_index`` for each call, so the cases differ only in the
cache behind them. Timing, sampling and the paired ratios are
``bench_routing.py``'s. Exit status 1 means the show target was missed.

    python bench/bench_cache.py [--cells 4] [--instances 12000] [--redis URL]
                                [--memcached HOST:PORT] [--api-mysql URL]
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench_routing import World, bare_select, measure, show, world_args, world_parser

from cellrouter.cells import registry
from cellrouter.cells.routing import cast_instance
from cellrouter.db.cell_schema import instances
from cellrouter.index import use_index
from cellrouter.index.cached_index import CACHED_INDEX, CachedIndex
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.index.lookup_cache import LookupCache, from_conf

SHOW_TARGET = 1.3  # show path (warm memory cache) / bare pk select


def lookup_cache(world: World, backend: str, url: str | None) -> LookupCache | None:
    """A lookup cache on ``backend`` (None when its server does not answer)."""
    conf = world.conf
    conf.set_override("backend", backend, group="cache")
    conf.set_override("backend_argument", [f"url:{url}"] if url else [], group="cache")
    conf.set_override("key_prefix", f"bench-{time.time_ns()}:", group="cache")
    try:
        cache = from_conf(conf)
        if cache.region is not None:
            cache.region.set("probe", 1)
            if cache.region.get("probe") != 1:
                return None
        return cache
    except Exception as error:  # noqa: BLE001  (a bench reports, it does not fail)
        print(f"  {backend}: not reachable ({type(error).__name__}: {error}); skipped")
        return None
    finally:
        for option in ("backend", "backend_argument", "key_prefix"):
            conf.clear_override(option, group="cache")


@contextlib.contextmanager
def api_database(server: str | None) -> Iterator[str | None]:
    """A fresh API database on ``server`` (dropped afterwards), or None for SQLite."""
    if server is None:
        yield None
        return
    name = "cellrouter_bench_api"
    admin = sa.create_engine(server, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        registry.reset()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def through(index: CachedIndex, fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """``fn`` reading the mapping index through ``index``."""

    def run(instance_uuid: str) -> Any:
        use_index(index)
        return fn(instance_uuid)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = world_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--memcached", default="127.0.0.1:11211")
    parser.add_argument(
        "--api-mysql",
        metavar="URL",
        help="put the API database on this MariaDB/MySQL server (a database "
        "cellrouter_bench_api is created and dropped), so the uncached lookup is a "
        "network round trip as in production; default: SQLite",
    )
    args = world_args(parser, argv)

    with (
        tempfile.TemporaryDirectory(prefix="cellrouter-bench-") as tmp,
        api_database(args.api_mysql) as api_url,
    ):
        t0 = time.perf_counter()
        world = World(Path(tmp), args.cells, args.instances, args.seed, api_url=api_url)
        engines = [registry.get(cell).engine for cell in world.cells]
        print(
            f"setup: {args.cells} SQLite cells, API database on "
            f"{'MariaDB' if api_url else 'SQLite'}, {len(world.uuids)} mapped instances "
            f"({time.perf_counter() - t0:.1f} s); {args.repeats} repeats x {args.ops} ops, median"
        )
        memory = CachedIndex(cache=lookup_cache(world, "memory", None))
        uncached = CachedIndex(cache=lookup_cache(world, "null", None))
        shared = {
            name: CachedIndex(cache=cache)
            for name, cache in (
                ("redis", lookup_cache(world, "redis", args.redis)),
                ("memcached", lookup_cache(world, "memcached", args.memcached)),
            )
            if cache is not None
        }
        for index in (memory, *shared.values()):  # warm: every instance looked up once
            use_index(index)
            InstanceMapping.get_by_instance_uuids(world.ctx, world.uuids)

        def lookup(u: str) -> Any:
            return InstanceMapping.get_by_instance_uuid(world.ctx, u)

        def cast(u: str) -> Any:
            return cast_instance(world.ctx, u, "noop")

        def pk_args(uuids: list[str]) -> list[tuple[sa.Engine, int]]:
            return [(engines[world.where[u][0]], world.where[u][1]) for u in uuids]

        same: Callable[[list[str]], list[str]] = lambda uuids: uuids  # noqa: E731
        by_uuid = (
            sa.select(instances)
            .where(instances.c.uuid == sa.bindparam("u"))
            .where(instances.c.deleted == 0)
        )

        def bare_uuid_select(a: tuple[sa.Engine, str]) -> Any:
            with a[0].connect() as conn:
                return conn.execute(by_uuid, {"u": a[1]}).first()

        def uuid_args(uuids: list[str]) -> list[tuple[sa.Engine, str]]:
            return [(engines[world.where[u][0]], u) for u in uuids]

        cases: dict[str, tuple[Callable[[Any], Any], Callable[[list[str]], Sequence[Any]]]] = {
            "show path, warm memory cache": (through(memory, lambda u: show(world, u)), same),
            "bare pk select": (lambda a: bare_select(*a), pk_args),
            "bare select by uuid": (bare_uuid_select, uuid_args),
            "lookup, uncached": (through(uncached, lookup), same),
            "lookup, memory": (through(memory, lookup), same),
            **{f"lookup, {name}": (through(index, lookup), same) for name, index in shared.items()},
            "cast, uncached": (through(uncached, cast), same),
            "cast, warm memory cache": (through(memory, cast), same),
        }
        samples = measure(cases, draw=lambda: world.sample(args.ops), repeats=args.repeats)
        use_index(CACHED_INDEX)

        width = max(map(len, samples))
        print()
        for name, values in samples.items():
            print(f"{name:<{width}}  {statistics.median(values):9.2f} us/op")

        def paired(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(samples[a], samples[b], strict=True))

        show_ratio = paired("show path, warm memory cache", "bare pk select")
        print()
        print(
            f"show path (warm memory cache) / bare pk select = {show_ratio:5.2f}x "
            f"(target <= {SHOW_TARGET}x) {'OK' if show_ratio <= SHOW_TARGET else 'MISSED'}"
        )
        print(
            f"  show path / bare select by uuid             = "
            f"{paired('show path, warm memory cache', 'bare select by uuid'):5.2f}x "
            "(what routing adds to the same query)"
        )
        for name in ("memory", *shared):
            print(
                f"lookup through {name:<9} / uncached lookup     = "
                f"{paired(f'lookup, {name}', 'lookup, uncached'):5.2f}x"
            )
        print(
            f"cast, warm memory cache / uncached cast        = "
            f"{paired('cast, warm memory cache', 'cast, uncached'):5.2f}x"
        )
        registry.reset()
    return 0 if show_ratio <= SHOW_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
