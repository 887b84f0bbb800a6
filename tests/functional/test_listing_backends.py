"""Cross-cell listing on real MariaDB and PostgreSQL cells (one database per cell).

Runs the walk property of ``tests/unit/test_listing.py`` (rows over 1-8 cells,
random sorts over nullable columns and collation-sensitive strings, random
page sizes, down cells with and without down-cell records) against each
backend: the servers must order exactly like Python and like SQLite. MariaDB
cells whose tables are utf8mb3 or latin1 (old Nova defaults) must too.
"""

from __future__ import annotations

import datetime
import os
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import listing_property as prop  # tests/ is on sys.path (the rootdir conftest)
import pytest
import servers  # tests/functional/ is on sys.path (its conftest)
import sqlalchemy as sa
from oslo_config import cfg

import cellrouter.conf
from cellrouter.across import health
from cellrouter.across.instance_list import UNKNOWN_STATUS, list_instances
from cellrouter.cells import registry
from cellrouter.cells.context import get_admin_context
from cellrouter.db import migration
from cellrouter.db.api_schema import instance_mappings
from cellrouter.db.database import api_engine
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import CellMapping

CELLS = 8
EXAMPLES = 60


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    """A clean configuration; every pool, health record and cached cell list dropped after."""
    conf = cellrouter.conf.setup([], default_config_files=[])
    health.reset()
    CACHED_INDEX.reset()
    try:
        yield conf
    finally:
        health.reset()
        CACHED_INDEX.reset()
        registry.reset()
        conf.reset()
        conf.clear_override("connection", group="api_database")
        cellrouter.conf.setup([], default_config_files=[])


@pytest.fixture(params=["mariadb", "postgresql"])
def db_factory(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``make(label) -> url``: a fresh database on the parametrized backend."""
    name = "mysql_db_factory" if request.param == "mariadb" else "pg_db_factory"
    return request.getfixturevalue(name)


def _deployment(conf: cfg.ConfigOpts, make_db: Callable[..., str], cells: int) -> list[CellMapping]:
    api_url = make_db("api")
    migration.sync("api", api_url)
    conf.set_override("connection", api_url, group="api_database")
    ctx = get_admin_context()
    mapped = []
    for index in range(cells):
        url = make_db(f"cell{index}")
        migration.sync("cell", url)
        mapped.append(
            CellMapping.create(
                ctx, name=f"cell{index}", database_connection=url, transport_url="none:///"
            )
        )
    return mapped


def test_walking_all_pages_yields_the_sorted_union(
    conf: cfg.ConfigOpts, db_factory: Callable[..., str]
) -> None:
    world = prop.ListingWorld(_deployment(conf, db_factory, CELLS))
    prop.check_string_and_null_order(world)  # binary collation, no PAD SPACE, NULLs first
    prop.run_walk_property(world, max_examples=EXAMPLES)


def test_unreachable_database_gives_a_flagged_partial_list(
    conf: cfg.ConfigOpts, db_factory: Callable[..., str]
) -> None:
    cells = _deployment(conf, db_factory, 2)
    ctx = get_admin_context()
    scheme = sa.make_url(cells[0].database_connection).drivername
    dead = CellMapping.create(  # nothing listens on port 1
        ctx,
        name="dead",
        database_connection=f"{scheme}://nova:secret-pw@127.0.0.1:1/nova",
        transport_url="none:///",
    )
    everywhere = [*cells, dead]
    placed = []
    for index in range(9):
        at = datetime.datetime(2024, 1, 1) + datetime.timedelta(minutes=index)
        uuid = f"00000000-0000-4000-8000-{index:012d}"
        row = {"uuid": uuid, "created_at": at, "project_id": "p1", "user_id": "u1", "deleted": 0}
        cell = everywhere[index % 3]
        mapping = {"instance_uuid": uuid, "cell_id": cell.id, "project_id": "p1", "created_at": at}
        placed.append((index % 3, row, mapping))
    prop.ListingWorld(cells).load([item for item in placed if item[0] != 2])
    with api_engine().begin() as conn:  # the dead cell's instances exist in the API DB only
        conn.execute(sa.insert(instance_mappings), [m for i, _, m in placed if i == 2])
    newest_first = [row["uuid"] for _, row, _ in reversed(placed)]

    result = list_instances(ctx, cells=everywhere)
    assert result.partial and result.down_cells == (dead.uuid,)
    assert "secret-pw" not in repr(result.failed_cells)
    assert [row["uuid"] for row in result.rows] == newest_first[1:3] + newest_first[4:6] + [
        newest_first[7],
        newest_first[8],
    ]

    result = list_instances(ctx, cells=everywhere, down_cell_records=True)
    assert result.partial
    assert [row["uuid"] for row in result.rows] == newest_first
    assert [row.get("status") for row in result.rows[:4]] == [UNKNOWN_STATUS, None, None] + [
        UNKNOWN_STATUS
    ]


# -- cells whose tables are not utf8mb4 ------------------------------------------------

#: Collation-sensitive names each charset can store: case, trailing space vs tab, non-ASCII.
_UTF8MB3_NAMES = ("", "a", "a ", "a\t", "A", "b", "é", "ß", "\u20ac", "\u03a9", "\uffee")
_LATIN1_NAMES = ("", "a", "a ", "a\t", "A", "b", "é", "É", "ß", "ÿ", "£")


@pytest.fixture
def mysql_charset_db() -> Iterator[Callable[[str, str], str]]:
    """``make(label, charset) -> url``: a MariaDB database of that default charset, dropped after.

    The shared factory creates utf8mb4 databases only; tables created by the
    migrations inherit the database's charset.
    """
    servers.require_mariadb()
    created: list[str] = []

    def make(label: str, charset: str) -> str:
        name = f"crtest_{label}_{os.getpid()}_{uuidlib.uuid4().hex[:10]}"
        url = servers.create_mysql_database(name, f"CHARACTER SET {charset}")
        created.append(name)
        return url

    try:
        yield make
    finally:
        for name in created:
            servers.drop_mysql_database(name)


def _column_charset(url: str, column: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT character_set_name FROM information_schema.columns WHERE"
                    " table_schema = DATABASE() AND table_name = 'instances'"
                    " AND column_name = :column"
                ),
                {"column": column},
            ).scalar_one()
    finally:
        engine.dispose()


def _walk(sort_keys: Sequence[str], direction: str, limit: int) -> list[dict[str, Any]]:
    """Every page of the instance list, following the markers."""
    ctx = get_admin_context()
    rows: list[dict[str, Any]] = []
    marker = None
    for _ in range(100):
        page = list_instances(
            ctx, sort_keys=list(sort_keys), sort_dirs=[direction], limit=limit, marker=marker
        )
        assert not page.partial, page.failed_cells
        rows += page.rows
        marker = page.next_marker
        if marker is None:
            return rows
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize(
    ("charset", "names"), [("utf8mb3", _UTF8MB3_NAMES), ("latin1", _LATIN1_NAMES)]
)
def test_cells_with_utf8mb3_or_latin1_tables_sort_by_code_point(
    conf: cfg.ConfigOpts,
    mysql_db_factory: Callable[..., str],
    mysql_charset_db: Callable[[str, str], str],
    charset: str,
    names: tuple[str, ...],
) -> None:
    api_url = mysql_db_factory("api")
    migration.sync("api", api_url)
    conf.set_override("connection", api_url, group="api_database")
    ctx = get_admin_context()
    cells = []
    for index in range(3):
        url = mysql_charset_db(f"{charset}{index}", charset)
        migration.sync("cell", url)
        assert _column_charset(url, "display_name") == charset
        cells.append(
            CellMapping.create(
                ctx, name=f"cell{index}", database_connection=url, transport_url="none:///"
            )
        )
    world = prop.ListingWorld(cells)
    placed = []
    for index, name in enumerate([*names, *names, None, None]):  # equal names: uuid decides
        uuid = f"00000000-0000-4000-8000-{index:012d}"
        host = names[(index * 7) % len(names)]
        row = {"uuid": uuid, "display_name": name, "host": host, "project_id": "p1", "deleted": 0}
        at = index % len(cells)
        placed.append(
            (at, row, {"instance_uuid": uuid, "cell_id": cells[at].id, "project_id": "p1"})
        )
    world.load(placed)
    rows = [row for _, row, _ in placed]

    for sort_keys in (["display_name"], ["host", "display_name"]):
        for direction in ("asc", "desc"):
            expected = prop.expected_order(rows, *prop.full_sort(sort_keys, [direction]))
            for limit in (1, 4, 100):
                walked = _walk(sort_keys, direction, limit)
                assert [r["uuid"] for r in walked] == [r["uuid"] for r in expected], (
                    sort_keys,
                    direction,
                    limit,
                )
                assert [r["display_name"] for r in walked] == [r["display_name"] for r in expected]
    if charset == "utf8mb3":  # the shared checks' strings are all utf8mb3 characters
        prop.check_string_and_null_order(world)
        prop.run_walk_property(world, max_examples=15)
