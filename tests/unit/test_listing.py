"""Cross-cell sorted listing: sort specs, SQL per dialect, the lister, and the walk property.

The walk property itself lives in ``tests/listing_property.py``, shared with
``tests/functional/test_listing_backends.py`` (MariaDB and PostgreSQL cells).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from listing_property import (
    STRINGS,
    ListingWorld,
    check_string_and_null_order,
    expected_order,
    full_sort,
    run_walk_property,
)
from oslo_config import cfg
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.mysql import mariadb

from cellrouter import exception
from cellrouter.across import health
from cellrouter.across.instance_list import UNKNOWN_STATUS, list_instances
from cellrouter.across.lister import CrossCellLister, ListResult, PageRequest, _CellQuery
from cellrouter.across.sorting import after_marker, build_sort_spec, order_by, values_getter
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext
from cellrouter.conf import get_conf
from cellrouter.db.api_schema import instance_mappings
from cellrouter.db.cell_schema import instances, services
from cellrouter.db.database import api_engine
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]


@pytest.fixture(autouse=True)
def clean_state(fresh_listing: None) -> None:
    """Every test here starts on fresh listing state (see ``fresh_listing``)."""


# -- sort specs ------------------------------------------------------------------------


def test_sort_spec_defaults_like_nova() -> None:
    """Nova's API defaults (``created_at desc``), then InstanceSortContext's ``uuid asc``."""
    spec = build_sort_spec(instances)
    assert spec.keys == ("created_at", "uuid") and spec.dirs == ("desc", "asc")
    spec = build_sort_spec(instances, ["host", "display_name"], ["asc"])
    assert spec.keys == ("host", "display_name", "uuid")
    assert spec.dirs == ("asc", "asc", "asc")
    spec = build_sort_spec(instances, ["host", "display_name"], ["desc"])
    assert spec.dirs == ("desc", "desc", "asc")
    spec = build_sort_spec(instances, ["uuid", "host"], ["DESC", "asc"])
    assert spec.keys == ("uuid", "host") and spec.dirs == ("desc", "asc")
    spec = build_sort_spec(instances, ["host", "uuid"], ["desc"])  # a uuid given keeps its dir
    assert spec.dirs == ("desc", "desc")
    spec = build_sort_spec(instances, ["vm_state"])
    assert spec.dirs == ("desc", "asc")


@pytest.mark.parametrize(
    ("keys", "dirs", "match"),
    [
        (["nope"], None, "no such column"),
        (["display_description"], None, "cannot be sorted"),
        (["host", "host"], None, "more than once"),
        (["host"], ["up"], "asc or desc"),
        (["host"], ["asc", "desc"], "more sort directions"),
    ],
)
def test_sort_spec_rejects(keys: list[str], dirs: list[str] | None, match: str) -> None:
    with pytest.raises(exception.InvalidSortKey, match=match):
        build_sort_spec(instances, keys, dirs)


def _sql(stmt: sa.Select[Any], dialect: sa.engine.Dialect) -> str:
    return " ".join(str(stmt.compile(dialect=dialect)).split())


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (sqlite.dialect(), "ORDER BY instances.host ASC, instances.created_at DESC"),
        (
            mariadb.MariaDBDialect(),
            "ORDER BY CONVERT(instances.host USING utf8mb4) COLLATE utf8mb4_nopad_bin ASC, "
            "instances.created_at DESC",
        ),
        (
            mysql.dialect(),
            "ORDER BY CONVERT(instances.host USING utf8mb4) COLLATE utf8mb4_0900_bin ASC, "
            "instances.created_at DESC",
        ),
        (
            postgresql.dialect(),
            'ORDER BY instances.host COLLATE "C" ASC NULLS FIRST, '
            "instances.created_at DESC NULLS LAST",
        ),
    ],
)
def test_order_by_puts_nulls_first_and_compares_binary(
    dialect: sa.engine.Dialect, expected: str
) -> None:
    spec = build_sort_spec(instances, ["host", "created_at", "uuid"], ["asc", "desc", "desc"])
    columns = [instances.c[key] for key in spec.keys]
    sql = _sql(sa.select(instances.c.id).order_by(*order_by(spec, columns, dialect)), dialect)
    assert expected in sql


@pytest.mark.parametrize("dialect", [mariadb.MariaDBDialect(), mysql.dialect()])
def test_mysql_compares_strings_as_utf8mb4_whatever_the_column_charset(
    dialect: sa.engine.Dialect,
) -> None:
    """A utf8mb4 collation on a utf8mb3 or latin1 column is error 1253: convert first."""
    spec = build_sort_spec(instances, ["host"], ["asc"])
    columns = [instances.c[key] for key in spec.keys]
    after = after_marker(spec, columns, ("h", "u"), dialect)
    sql = _sql(sa.select(instances.c.id).where(after), dialect)
    collation = "utf8mb4_nopad_bin" if dialect.is_mariadb else "utf8mb4_0900_bin"
    host = f"CONVERT(instances.host USING utf8mb4) COLLATE {collation}"
    assert f"WHERE {host} > %s OR {host} = %s AND " in sql
    assert sql.count("COLLATE") == sql.count("CONVERT(") == 3  # no bare column is collated


def test_missing_columns_sort_as_constant_null() -> None:
    spec = build_sort_spec(instances, ["host", "created_at"], ["desc", "asc"])
    exprs = [None, instances.c.created_at, instances.c.uuid]
    dialect = postgresql.dialect()
    assert len(order_by(spec, exprs, dialect)) == 2  # no "ORDER BY NULL"
    # host is NULL in every such row: after a NULL host (descending) comes nothing...
    after = after_marker(spec, exprs, (None, datetime.datetime(2020, 1, 1), "u"), dialect)
    assert "instances.host" not in _sql(sa.select(instances.c.id).where(after), dialect)
    # ...and after a non-NULL host, every row (NULL is smaller).
    after = after_marker(spec, exprs, ("h", None, "u"), dialect)
    assert _sql(sa.select(instances.c.id).where(after), dialect).endswith("WHERE true")


_ORDER_TABLE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("s", sa.String(10)),
    sa.Column("i", sa.Integer),
    sa.Column("d", sa.DateTime),
)

_order_rows = st.lists(
    st.fixed_dictionaries(
        {
            "uuid": st.uuids().map(str),
            "s": st.none() | st.sampled_from(STRINGS),
            "i": st.none() | st.integers(-2, 2),
            "d": st.none()
            | st.sampled_from([datetime.datetime(2020, 1, 1, 0, 0, 0, n) for n in (0, 1, 999999)]),
        }
    ),
    max_size=25,
    unique_by=lambda row: row["uuid"],
)


@settings(max_examples=150, deadline=None)
@given(
    rows=_order_rows,
    keys=st.lists(st.sampled_from(["s", "i", "d", "uuid"]), min_size=1, max_size=3, unique=True),
    dirs=st.lists(st.sampled_from(["asc", "desc"]), max_size=3),
    marker_index=st.integers(0, 30),
)
def test_sql_order_keyset_and_python_merge_key_agree(
    rows: list[dict[str, Any]], keys: list[str], dirs: list[str], marker_index: int
) -> None:
    dirs = dirs[: len(keys)]
    spec = build_sort_spec(_ORDER_TABLE, keys, dirs, default_keys=("d",))
    keys_, dirs_ = full_sort(keys, dirs)
    assert (list(spec.keys), list(spec.dirs)) == (keys_, dirs_)
    expected = [row["uuid"] for row in expected_order(rows, keys_, dirs_)]

    getter = values_getter(spec.keys)
    by_python = sorted(rows, key=lambda row: spec.merge_key(getter(row)))
    assert [row["uuid"] for row in by_python] == expected
    merge_key, reverse = spec.merge_order
    by_merge = sorted(rows, key=lambda row: merge_key(getter(row)), reverse=reverse)
    assert [row["uuid"] for row in by_merge] == expected

    engine = sa.create_engine("sqlite://")
    columns = [_ORDER_TABLE.c[key] for key in spec.keys]
    with engine.begin() as conn:
        _ORDER_TABLE.create(conn)
        if rows:
            conn.execute(sa.insert(_ORDER_TABLE), rows)
        ordered = order_by(spec, columns, conn.dialect)
        by_sql = conn.execute(sa.select(_ORDER_TABLE.c.uuid).order_by(*ordered)).scalars().all()
        assert by_sql == expected
        if rows:
            marker = rows[marker_index % len(rows)]
            condition = after_marker(spec, columns, getter(marker), conn.dialect)
            stmt = sa.select(_ORDER_TABLE.c.uuid).where(condition).order_by(*ordered)
            after = conn.execute(stmt).scalars().all()
            assert after == expected[expected.index(marker["uuid"]) + 1 :]


def test_walking_all_pages_yields_the_sorted_union_on_sqlite_cells(
    make_cells: MakeCells,
) -> None:
    world = ListingWorld(make_cells(8))
    check_string_and_null_order(world)
    run_walk_property(world, max_examples=100)


# -- list_instances --------------------------------------------------------------------


def _uuids(result: ListResult) -> list[str]:
    return [row["uuid"] for row in result.rows]


@pytest.fixture
def three_cells(make_cells: MakeCells) -> list[CellMapping]:
    return make_cells(3)


def _at(minute: int) -> datetime.datetime:
    return datetime.datetime(2024, 5, 1, 12, minute)


def test_default_order_is_created_at_desc_and_rows_are_dicts(
    three_cells: list[CellMapping], make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    made = {
        make_instance(cell, created_at=_at(minute)): minute
        for minute, cell in zip(range(9), three_cells * 3, strict=True)
    }
    result = list_instances(admin_ctx)
    assert _uuids(result) == sorted(made, key=lambda u: made[u], reverse=True)
    assert not result.partial and result.failed_cells == {} and result.next_marker is None
    row = result.rows[0]
    assert isinstance(row, dict) and set(row) == {c.name for c in instances.c}
    assert row["created_at"] == _at(8)


@pytest.mark.parametrize("direction", ["desc", "asc"])
@pytest.mark.parametrize("limit", [1, 2, 100])
def test_equal_sort_values_tie_break_on_uuid_ascending_in_either_direction(
    three_cells: list[CellMapping],
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    direction: str,
    limit: int,
) -> None:
    """Nova appends ``uuid asc`` whatever the first key's direction: SQL, merge and markers."""
    made = {
        make_instance(cell, created_at=_at(minute)): minute
        for minute, cell in zip([1, 1, 1, 1, 2, 2, 2, 2, 2], three_cells * 3, strict=True)
    }
    by_uuid = sorted(made)
    newest_first = direction == "desc"
    expected = sorted(by_uuid, key=lambda u: -made[u] if newest_first else made[u])  # stable
    walked: list[str] = []
    marker = None
    for _ in range(len(made) + 1):
        page = list_instances(
            admin_ctx, sort_keys=["created_at"], sort_dirs=[direction], limit=limit, marker=marker
        )
        walked += _uuids(page)
        marker = page.next_marker
        if marker is None:
            break
    assert walked == expected
    if newest_first:
        assert _uuids(list_instances(admin_ctx)) == expected  # the default order


def test_filters(
    three_cells: list[CellMapping], make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    a, b, c = three_cells
    web = make_instance(a, display_name="web", host="h1", vm_state="active")
    db = make_instance(b, display_name="db", host="h2", vm_state="stopped", user_id="u2")
    other = make_instance(c, project_id="p2", display_name="web", host="h1", vm_state="error")
    gone = make_instance(c, display_name="old", deleted=1, vm_state="deleted")

    def names(**filters: Any) -> set[str]:
        return set(_uuids(list_instances(admin_ctx, filters=filters)))

    assert names() == {web, db, other}
    assert names(project_id="project-a") == {web, db}
    assert names(project_id=["project-a", "p2"]) == {web, db, other}
    assert names(user_id="u2") == {db}
    assert names(host="h1") == {web, other}
    assert names(vm_state=("active", "stopped")) == {web, db}
    assert names(display_name="web") == {web, other}
    assert names(display_name="we") == set()  # exact
    assert names(deleted=True) == {gone}
    assert names(deleted=False) == {web, db, other}
    assert set(_uuids(list_instances(admin_ctx.elevated(read_deleted="yes")))) == {
        web,
        db,
        other,
        gone,
    }
    assert set(_uuids(list_instances(admin_ctx.elevated(read_deleted="only")))) == {gone}
    with pytest.raises(exception.InvalidValue, match="no_such"):
        list_instances(admin_ctx, filters={"no_such": 1})


def test_columns_limit_and_project_only(
    three_cells: list[CellMapping], make_instance: MakeInstance
) -> None:
    mine = make_instance(three_cells[0], project_id="p-mine")
    make_instance(three_cells[1], project_id="p-other")
    ctx = RequestContext(user_id="u", project_id="p-mine")
    result = list_instances(ctx, project_only=True, columns=["uuid", "host"])
    assert _uuids(result) == [mine]
    assert set(result.rows[0]) == {"uuid", "host", "created_at"}  # sort keys come along
    assert list_instances(ctx, limit=0).rows == []
    with pytest.raises(exception.InvalidValue, match="limit"):
        list_instances(ctx, limit=-1)
    with pytest.raises(exception.InvalidValue, match="project_id"):
        list_instances(RequestContext(), project_only=True)
    with pytest.raises(exception.InvalidValue, match="no column"):
        list_instances(ctx, columns=["nope"])


def test_invalid_markers(
    three_cells: list[CellMapping], make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    with pytest.raises(exception.InvalidMarker):
        list_instances(admin_ctx, marker=str(uuidlib.uuid4()))  # no mapping
    unscheduled = str(uuidlib.uuid4())
    InstanceMapping.create(admin_ctx, instance_uuid=unscheduled, project_id="p")
    with pytest.raises(exception.InvalidMarker):
        list_instances(admin_ctx, marker=unscheduled)  # mapping without a cell
    ghost = str(uuidlib.uuid4())
    InstanceMapping.create(
        admin_ctx, instance_uuid=ghost, project_id="p", cell_mapping=three_cells[0]
    )
    with pytest.raises(exception.InvalidMarker):
        list_instances(admin_ctx, marker=ghost)  # mapped, but no row in its cell
    with pytest.raises(exception.InvalidSortKey):
        list_instances(admin_ctx, sort_keys=["bogus"])


def test_a_marker_deleted_since_still_marks_the_position(
    three_cells: list[CellMapping], make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    made = [make_instance(three_cells[i % 3], created_at=_at(i)) for i in range(6)]
    page = list_instances(admin_ctx, limit=2)
    assert _uuids(page) == [made[5], made[4]]
    with registry.get(three_cells[1]).engine.begin() as conn:  # made[4] lives in cell 1
        conn.execute(sa.update(instances).where(instances.c.uuid == made[4]).values(deleted=1))
    assert _uuids(list_instances(admin_ctx, marker=page.next_marker)) == made[3::-1]


@pytest.fixture
def unreachable_cell(api_db: str, admin_ctx: RequestContext) -> CellMapping:
    """A mapped cell whose SQLite database cannot be opened (its directory does not exist)."""
    return CellMapping.create(
        admin_ctx,
        name="unreachable",
        database_connection="sqlite:////nonexistent-cellrouter-dir/cell.db",
        transport_url="none:///",
    )


def _map_instances(
    ctx: RequestContext, cell: CellMapping, created: Sequence[datetime.datetime | None]
) -> list[str]:
    """Instance mappings (only) of instances in ``cell``, created at these times."""
    rows = [
        {
            "instance_uuid": str(uuidlib.uuid4()),
            "cell_id": cell.id,
            "project_id": "project-a",
            "user_id": "user-a",
            "created_at": at,
        }
        for at in created
    ]
    with api_engine().begin() as conn:
        conn.execute(sa.insert(instance_mappings), rows)
    return [row["instance_uuid"] for row in rows]


def test_unreachable_cell_gives_a_flagged_partial_list_or_down_cell_records(
    three_cells: list[CellMapping],
    unreachable_cell: CellMapping,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
) -> None:
    up = {make_instance(three_cells[i % 3], created_at=_at(2 * i)): 2 * i for i in range(6)}
    down = dict(
        zip(_map_instances(admin_ctx, unreachable_cell, [_at(3), _at(7)]), (3, 7), strict=True)
    )
    (other_project,) = _map_instances(admin_ctx, unreachable_cell, [_at(9)])
    with api_engine().begin() as conn:
        conn.execute(
            sa.update(instance_mappings)
            .where(instance_mappings.c.instance_uuid == other_project)
            .values(project_id="p2")
        )
    cells = [*three_cells, unreachable_cell]

    result = list_instances(admin_ctx, cells=cells)
    assert result.partial
    assert result.down_cells == (unreachable_cell.uuid,)
    assert "OperationalError" in result.failed_cells[unreachable_cell.uuid]
    assert _uuids(result) == sorted(up, key=up.__getitem__, reverse=True)

    # With down-cell records: minimal records, merged in sort order, still flagged.
    minutes = up | down
    result = list_instances(
        admin_ctx, cells=cells, down_cell_records=True, filters={"project_id": "project-a"}
    )
    assert result.partial
    assert _uuids(result) == sorted(minutes, key=minutes.__getitem__, reverse=True)
    records = [row for row in result.rows if row["uuid"] in down]
    assert records and all(row["status"] == UNKNOWN_STATUS for row in records)
    assert records[0] == {
        "uuid": records[0]["uuid"],
        "project_id": "project-a",
        "user_id": "user-a",
        "created_at": _at(7),
        "status": UNKNOWN_STATUS,
    }
    assert all("status" not in row for row in result.rows if row["uuid"] in up)

    # Paging through with records: markers may be records themselves.
    walked: list[str] = []
    marker = None
    while True:
        page = list_instances(
            admin_ctx,
            cells=cells,
            down_cell_records=True,
            limit=3,
            marker=marker,
            sort_keys=["created_at"],
            sort_dirs=["asc"],
            filters={"project_id": "project-a"},
        )
        walked += _uuids(page)
        marker = page.next_marker
        if marker is None:
            break
    assert walked == sorted(minutes, key=minutes.__getitem__)

    # Sorting on a key the mappings do not have: the records sort as NULL (first).
    result = list_instances(
        admin_ctx, cells=cells, down_cell_records=True, sort_keys=["host"], sort_dirs=["asc"]
    )
    assert set(_uuids(result)[:3]) == {*down, other_project}


def test_skipping_failed_cells_can_be_turned_off(
    conf: cfg.ConfigOpts,
    three_cells: list[CellMapping],
    unreachable_cell: CellMapping,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
) -> None:
    make_instance(three_cells[0])
    conf.set_override("list_records_by_skipping_down_cells", False, group="cells")
    cells = [*three_cells, unreachable_cell]
    with pytest.raises(exception.CellUnavailable, match="unreachable"):
        list_instances(admin_ctx, cells=cells)
    assert list_instances(admin_ctx, cells=cells, down_cell_records=True).partial


def test_marker_in_a_down_cell(
    three_cells: list[CellMapping],
    unreachable_cell: CellMapping,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
) -> None:
    (marker,) = _map_instances(admin_ctx, unreachable_cell, [_at(5)])
    later = make_instance(three_cells[0], created_at=_at(9))
    earlier = make_instance(three_cells[1], created_at=_at(1))
    cells = [*three_cells, unreachable_cell]
    with pytest.raises(exception.CellUnavailable):
        list_instances(admin_ctx, cells=cells, marker=marker)
    result = list_instances(admin_ctx, cells=cells, marker=marker, down_cell_records=True)
    assert _uuids(result) == [earlier]
    assert later not in _uuids(result)


def test_per_project_cells(
    conf: cfg.ConfigOpts,
    three_cells: list[CellMapping],
    unreachable_cell: CellMapping,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
) -> None:
    mine = make_instance(three_cells[2], project_id="p-mine")
    _map_instances(admin_ctx, unreachable_cell, [_at(1)])  # project-a lives there too
    filters = {"project_id": "p-mine"}
    # The mappings say only three_cells[2] holds p-mine: no other cell is asked.
    conf.set_override("list_cells_by_mappings", True, group="cells")
    result = list_instances(admin_ctx, filters=filters)
    assert _uuids(result) == [mine] and not result.partial
    conf.set_override("list_cells_by_mappings", False, group="cells")
    assert list_instances(admin_ctx, filters=filters).partial  # every cell is asked
    conf.set_override("instance_list_per_project_cells", True, group="cells")
    result = list_instances(admin_ctx, filters=filters)
    assert _uuids(result) == [mine] and not result.partial
    assert list_instances(admin_ctx, filters=filters, by_project=False).partial


class _FetchSpy:
    """Wraps :meth:`_CellQuery.fetch`: records (cell, limit) and can fail chosen calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int | None]] = []
        self.fail: Callable[[str, int], BaseException | None] = lambda cell, nth: None
        self.hang: threading.Event | None = None
        self.hang_cell: str | None = None
        real = _CellQuery.fetch

        def fetch(
            query: _CellQuery,
            cctx: RequestContext,
            after: Any,
            limit: int | None,
            reads: Any = None,
        ) -> Any:
            assert cctx.cell_uuid is not None
            self.calls.append((cctx.cell_uuid, limit))
            nth = sum(1 for cell, _ in self.calls if cell == cctx.cell_uuid)
            error = self.fail(cctx.cell_uuid, nth)
            if error is not None:
                raise error
            if self.hang is not None and cctx.cell_uuid == self.hang_cell:
                self.hang.wait(30)
            return real(query, cctx, after, limit, reads)

        monkeypatch.setattr(_CellQuery, "fetch", fetch)

    def per_cell(self, cell: CellMapping) -> list[int | None]:
        return [limit for uuid, limit in self.calls if uuid == cell.uuid]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_FetchSpy]:
    spy = _FetchSpy(monkeypatch)
    yield spy
    if spy.hang is not None:
        spy.hang.set()


def _fill(cells: Sequence[CellMapping], per_cell: int) -> list[str]:
    """``per_cell`` instances in each cell, interleaved in created_at; newest first."""
    made = []
    for index in range(per_cell * len(cells)):
        row = {
            "uuid": str(uuidlib.uuid4()),
            "created_at": datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=index),
            "project_id": "project-a",
            "deleted": 0,
        }
        cell = cells[index % len(cells)]
        with registry.get(cell).engine.begin() as conn:
            conn.execute(sa.insert(instances).values(row))
        with api_engine().begin() as conn:
            conn.execute(
                sa.insert(instance_mappings).values(
                    instance_uuid=row["uuid"], cell_id=cell.id, project_id="project-a"
                )
            )
        made.append(row["uuid"])
    return made[::-1]


@pytest.mark.parametrize("strategy", ["fixed", "distributed"])
def test_batch_strategies(
    strategy: str,
    conf: cfg.ConfigOpts,
    three_cells: list[CellMapping],
    admin_ctx: RequestContext,
    spy: _FetchSpy,
) -> None:
    conf.set_override("list_batch_strategy", strategy, group="cells")
    conf.set_override("list_batch_size", 10, group="cells")
    newest_first = _fill(three_cells, 30)
    result = list_instances(admin_ctx, limit=60, cells=three_cells)
    assert _uuids(result) == newest_first[:60]
    for cell in three_cells:
        limits = spy.per_cell(cell)
        if strategy == "fixed":  # 20 rows of each cell fill the page (+1 to find the 60th)
            assert limits[:2] == [10, 10] and len(limits) <= 3
            assert all(limit is not None and limit <= 10 for limit in limits)
        else:  # a third of the page plus a margin (3 sigma): one batch does it
            assert len(limits) == 1 and limits[0] is not None and 20 < limits[0] < 30
    spy.calls.clear()

    # Skewed: one cell holds the whole page.
    result = list_instances(admin_ctx, limit=25, cells=three_cells, sort_keys=["project_id"])
    assert len(result.rows) == 25 and result.next_marker == result.rows[-1]["uuid"]
    for cell in three_cells:
        limits = spy.per_cell(cell)
        assert all(limit is not None and limit <= 25 for limit in limits)
        assert len(limits) <= (3 if strategy == "fixed" else 2)


def test_a_cell_failing_mid_list_makes_it_partial(
    three_cells: list[CellMapping], admin_ctx: RequestContext, spy: _FetchSpy
) -> None:
    get_conf().set_override("list_batch_strategy", "fixed", group="cells")
    get_conf().set_override("list_batch_size", 10, group="cells")
    newest_first = _fill(three_cells, 20)
    flaky = three_cells[0]
    spy.fail = lambda cell, nth: (
        sa.exc.OperationalError("SELECT", {}, Exception("gone away"))
        if cell == flaky.uuid and nth == 2
        else None
    )
    result = list_instances(admin_ctx, limit=45, cells=three_cells)
    assert result.partial and result.down_cells == (flaky.uuid,)
    flaky_rows = set(newest_first[2::3])  # index 0 of _fill is cell 0: oldest-first order
    expected = [u for u in newest_first if u not in flaky_rows or u in _uuids(result)]
    assert _uuids(result) == expected[:45]
    assert len(set(_uuids(result)) & flaky_rows) == 10  # its first batch only

    get_conf().set_override("list_records_by_skipping_down_cells", False, group="cells")
    health.reset()
    spy.calls.clear()
    with pytest.raises(exception.CellUnavailable, match="gone away"):
        list_instances(admin_ctx, limit=45, cells=three_cells)


def test_a_hung_cell_costs_one_timeout_and_is_flagged(
    conf: cfg.ConfigOpts, three_cells: list[CellMapping], admin_ctx: RequestContext, spy: _FetchSpy
) -> None:
    newest_first = _fill(three_cells[:2], 5)
    hung = three_cells[2]
    spy.hang, spy.hang_cell = threading.Event(), hung.uuid
    conf.set_override("scatter_timeout", 0.3, group="cells")  # the cells' own bound
    start = time.monotonic()
    result = list_instances(admin_ctx, cells=three_cells)
    assert time.monotonic() - start < 15.0  # gave up on the cell, which hangs for 30 s
    assert result.failed_cells == {hung.uuid: "did not respond"}
    assert _uuids(result) == newest_first
    assert len(spy.per_cell(hung)) == 1  # asked once, then given up on
    # Marked down: flagged without being asked, and without waiting out the (long) timeout.
    start = time.monotonic()
    assert list_instances(admin_ctx, cells=three_cells, timeout=30.0).partial
    assert time.monotonic() - start < 15.0
    assert len(spy.per_cell(hung)) == 1


def test_a_callers_short_timeout_flags_only_its_own_list(
    conf: cfg.ConfigOpts, three_cells: list[CellMapping], admin_ctx: RequestContext, spy: _FetchSpy
) -> None:
    newest_first = _fill(three_cells[:2], 5)
    hung = three_cells[2]
    spy.hang, spy.hang_cell = threading.Event(), hung.uuid
    result = list_instances(admin_ctx, cells=three_cells, timeout=0.2)  # configured: 60 s
    assert result.failed_cells == {hung.uuid: "did not respond"}
    # The caller's deadline says nothing about the cell: nobody else sees it down.
    assert not health.is_down(hung.uuid)
    assert hung.uuid not in health.cell_health() or health.cell_health()[hung.uuid].up
    spy.hang.set()
    result = list_instances(admin_ctx, cells=three_cells, timeout=10.0)
    assert not result.partial and _uuids(result) == newest_first


@pytest.mark.parametrize("limit", ["5", 2.5, True, -1, float("nan")])
def test_limit_must_be_a_whole_number(admin_ctx: RequestContext, limit: object) -> None:
    with pytest.raises(exception.InvalidValue, match="limit"):
        list_instances(admin_ctx, limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", ["5", -1, -0.5, True, float("nan"), float("inf")])
def test_timeout_must_be_seconds(admin_ctx: RequestContext, timeout: object) -> None:
    with pytest.raises(exception.InvalidValue, match="timeout"):
        list_instances(admin_ctx, timeout=timeout)  # type: ignore[arg-type]


def test_failed_cell_reasons_and_logs_carry_no_password(
    three_cells: list[CellMapping],
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "Pa55w0rd-xyz"
    locked = CellMapping.create(
        admin_ctx,
        name="locked",
        database_connection=f"mysql+pymysql://nova:{secret}@127.0.0.1:1/nova",
        transport_url="none:///",
    )
    make_instance(three_cells[0])
    with caplog.at_level(logging.DEBUG):
        result = list_instances(admin_ctx, cells=[*three_cells, locked])
    assert result.down_cells == (locked.uuid,)
    assert secret not in repr(result.failed_cells)
    assert secret not in caplog.text
    assert secret not in repr(health.cell_health())


def test_generic_lister_on_another_cell_table(
    three_cells: list[CellMapping], admin_ctx: RequestContext
) -> None:
    made = []
    for index in range(7):
        row = {
            "uuid": str(uuidlib.uuid4()),
            "host": f"host-{index % 3}",
            "binary": f"nova-{index}",
            "topic": f"compute-{index}",
            "created_at": _at(index),
        }
        with registry.get(three_cells[index % 3]).engine.begin() as conn:
            conn.execute(sa.insert(services).values(row))
        made.append(row)
    lister = CrossCellLister(services)
    first = lister.page(admin_ctx, sort_keys=["host", "created_at"], sort_dirs=["asc"], limit=4)
    rest = lister.page(
        admin_ctx,
        sort_keys=["host", "created_at"],
        sort_dirs=["asc"],
        limit=4,
        marker=first.next_marker,
    )
    expected = expected_order(made, ["host", "created_at", "uuid"], ["asc"] * 3)
    assert _uuids(first) + _uuids(rest) == [row["uuid"] for row in expected]
    assert rest.next_marker is None
    with pytest.raises(exception.InvalidMarker):
        lister.page(admin_ctx, marker="nope")


class _StandInLister(CrossCellLister):
    """A generic lister whose down-cell hook serves fixed records (``host, uuid`` order)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__(services)
        self.records = records
        self.requests: list[PageRequest] = []

    def down_cell_records(self, ctx: RequestContext, request: PageRequest) -> list[dict[str, Any]]:
        self.requests.append(request)
        assert request.spec.keys == ("host", "uuid") and request.spec.dirs == ("asc", "asc")
        rows = sorted(self.records, key=lambda row: (row["host"], row["uuid"]))
        if request.after is not None:
            rows = [row for row in rows if (row["host"], row["uuid"]) > request.after]
        return rows[: request.limit]


def test_generic_lister_hooks_get_one_page_request(
    three_cells: list[CellMapping], unreachable_cell: CellMapping, admin_ctx: RequestContext
) -> None:
    """Marker resolution and down-cell records see the page as a PageRequest, narrowed."""
    made = []
    for index in range(4):
        row = {"uuid": f"real-{index}", "host": f"host-{index}", "created_at": _at(index)}
        with registry.get(three_cells[index % 3]).engine.begin() as conn:
            conn.execute(sa.insert(services).values(row))
        made.append(row)
    records = [{"uuid": f"stand-in-{i}", "host": f"host-{i}b", "created_at": None} for i in (0, 2)]
    lister = _StandInLister(records)
    cells = [*three_cells, unreachable_cell]
    kwargs: dict[str, Any] = {
        "sort_keys": ["host"],
        "sort_dirs": ["asc"],
        "limit": 3,
        "cells": cells,
        "filters": {"topic": None},
        "down_cell_records": True,
        "timeout": 5.0,
    }
    first = lister.page(admin_ctx, **kwargs)
    assert _uuids(first) == ["real-0", "stand-in-0", "real-1"]
    assert first.down_cells == (unreachable_cell.uuid,) and first.next_marker == "real-1"
    (request,) = lister.requests
    assert request.cells == (unreachable_cell,) and request.after is None
    assert (request.limit, request.timeout, request.down_cell_records) == (3, 5.0, True)
    assert request.spec.keys == ("host", "uuid") and request.filters == {"topic": None}

    rest = lister.page(admin_ctx, marker=first.next_marker, **kwargs)
    assert _uuids(rest) == ["real-2", "stand-in-2", "real-3"]
    assert lister.requests[-1].after == ("host-1", "real-1")  # the marker row's sort values
    assert lister.requests[-1].cells == (unreachable_cell,)
    everything = expected_order([*made, *records], ["host", "uuid"], ["asc", "asc"])
    assert _uuids(first) + _uuids(rest) == [row["uuid"] for row in everything][:6]


class _BareLister(CrossCellLister):
    """A lister whose ``__init__`` does not call the base one."""

    def __init__(self) -> None:
        self.table = instances


def test_pages_alike_share_their_statements(
    three_cells: list[CellMapping],
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = [make_instance(cell, created_at=_at(index)) for index, cell in enumerate(three_cells)]
    lister = _BareLister()
    spec = build_sort_spec(instances, None, None)
    first = lister._query(admin_ctx, spec, None, {"project_id": ["project-a"]})
    assert lister._query(admin_ctx, spec, None, {"project_id": ["project-a"]}) is first
    assert lister._query(admin_ctx, spec, None, {"project_id": ["project-b"]}) is not first
    assert lister._query(admin_ctx, spec, ["uuid"], {"project_id": ["project-a"]}) is not first
    deleted = admin_ctx.elevated(read_deleted="yes")
    assert lister._query(deleted, spec, None, {"project_id": ["project-a"]}) is not first
    # An unhashable filter value: built for its page alone.
    odd = {"project_id": [["project-a"]]}
    assert lister._query(admin_ctx, spec, None, odd) is not lister._query(
        admin_ctx, spec, None, odd
    )

    # The statements of a kept query serve every page like it, markers included.
    assert [row["uuid"] for row in lister.page(admin_ctx, limit=2).rows] == made[::-1][:2]
    page = lister.page(admin_ctx, limit=2, marker=made[1])
    assert [row["uuid"] for row in page.rows] == [made[0]]
    assert len(lister._query_cache()) <= 8

    monkeypatch.setattr("cellrouter.across.lister.QUERY_CACHE_SIZE", 2)
    for project in ("x", "y", "z"):
        lister._query(admin_ctx, spec, None, {"project_id": project})
    assert len(lister._query_cache()) == 2
