"""The cross-cell listing property, shared by the SQLite unit test and the MariaDB and
PostgreSQL functional test: walking every page with markers yields exactly the
globally sorted union of random rows spread over the cells.
"""

import datetime
import functools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellrouter import exception
from cellrouter.across import health
from cellrouter.across.instance_list import _INSTANCES, UNKNOWN_STATUS, list_instances
from cellrouter.cells import registry
from cellrouter.cells.context import get_admin_context
from cellrouter.conf import get_conf
from cellrouter.db.api_schema import instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.db.database import api_engine
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import CellMapping

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]

#: Nullable instance columns of every kind (timestamps, strings, integers), and uuid.

SORT_KEYS = (
    "created_at",
    "launched_at",
    "display_name",
    "host",
    "vm_state",
    "power_state",
    "memory_mb",
    "project_id",
    "user_id",
    "uuid",
)
STRING_KEYS = ("display_name", "host", "vm_state")
#: Strings where collations disagree: case, trailing space vs tab, non-ASCII, empty.
STRINGS = ("", "a", "a ", "a\t", "A", "é", "\u20ac")
#: The columns a down-cell record takes from the instance mapping.
MAPPING_FIELDS = ("uuid", "project_id", "user_id", "created_at")


def full_sort(keys: Sequence[str], dirs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Nova's reading of sort params: missing dirs take the first one (or desc), then
    ``uuid asc`` unless uuid is a key already (Nova's ``InstanceSortContext``)."""
    first = dirs[0] if dirs else "desc"
    keys, dirs = list(keys), list(dirs) + [first] * (len(keys) - len(dirs))
    if "uuid" not in keys:
        keys.append("uuid")
        dirs.append("asc")
    return keys, dirs


def expected_order(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], dirs: Sequence[str]
) -> list[dict[str, Any]]:
    """``rows`` sorted with NULL smallest and Python's (code point) string order."""

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for key, direction in zip(keys, dirs, strict=True):
            x, y = a.get(key), b.get(key)
            if x == y:
                continue
            if x is None:
                result = -1
            elif y is None:
                result = 1
            else:
                result = -1 if x < y else 1
            return result if direction == "asc" else -result
        return 0

    return sorted(rows, key=functools.cmp_to_key(compare))


# -- the property: walking every page yields the sorted union --------------------------


class ListingWorld:
    """Cells (and the API database) whose instances each example replaces."""

    def __init__(self, cells: Sequence[CellMapping]) -> None:
        self.cells = list(cells)
        self._dirty: set[str] = set()
        conf = get_conf()
        conf.set_override("list_batch_size", 10, group="cells")
        conf.set_override("cell_down_interval", 3600, group="cells")  # no probe mid-walk

    def load(self, placed: Sequence[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        """Replace every instance: (cell index, instance row, mapping row) each."""
        for cell in self.cells:
            if cell.uuid in self._dirty:
                with registry.get(cell).engine.begin() as conn:
                    conn.execute(sa.delete(instances))
        self._dirty.clear()
        with api_engine().begin() as conn:
            conn.execute(sa.delete(instance_mappings))
            if placed:
                conn.execute(sa.insert(instance_mappings), [mapping for _, _, mapping in placed])
        # Written behind the mapping store's back (bulk speed): forget cached lookups,
        # and the markers handed out (a drawn uuid comes back with other values).
        CACHED_INDEX.cache.clear_local()
        _INSTANCES.reset()
        for index, cell in enumerate(self.cells):
            rows = [row for at, row, _ in placed if at == index]
            if rows:
                self._dirty.add(cell.uuid)
                with registry.get(cell).engine.begin() as conn:
                    conn.execute(sa.insert(instances), rows)


@st.composite
def _placed_instances(
    draw: st.DrawFn, cells: Sequence[CellMapping], max_rows: int
) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    times = draw(
        st.lists(
            st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2030, 1, 1)),
            min_size=1,
            max_size=4,
        )
    )
    # Small per-example pools: equal and nearly equal values meet often.
    string_pool = draw(st.lists(st.sampled_from(STRINGS), min_size=2, max_size=4, unique=True))
    time_values = st.none() | st.sampled_from(times)
    strings = st.none() | st.sampled_from(string_pool)
    numbers = st.none() | st.integers(-2, 3)
    instance = st.fixed_dictionaries(
        {
            "uuid": st.uuids().map(str),
            "created_at": time_values,
            "launched_at": time_values,
            "display_name": strings,
            "host": strings,
            "vm_state": strings,
            "power_state": numbers,
            "memory_mb": numbers,
            "project_id": st.sampled_from(["p1", "p2"]),
            "user_id": st.none() | st.sampled_from(["u1", "u2"]),
            "deleted": st.sampled_from([0, 0, 0, 1]),
        }
    )
    # Mappings timed as their instances (the page shares then say each cell's rows
    # on a page), or at their own times (the shares are wrong and cells run short).
    timed_as_instances = draw(st.booleans())
    count = draw(st.integers(0, max_rows))  # uniform: st.lists alone averages ~5 rows
    rows = draw(st.lists(instance, min_size=count, max_size=count, unique_by=lambda r: r["uuid"]))
    placed = []
    for row in rows:
        index = draw(st.integers(0, len(cells) - 1))
        mapping = {
            "instance_uuid": row["uuid"],
            "cell_id": cells[index].id,
            "project_id": row["project_id"],
            "user_id": row["user_id"],
            "created_at": row["created_at"] if timed_as_instances else draw(time_values),
            "queued_for_delete": bool(row["deleted"]),
        }
        placed.append((index, row, mapping))
    return placed


def check_sorted_walk(world: ListingWorld, data: st.DataObject, max_rows: int) -> None:
    """Random rows over 1..N cells, random sort, random page sizes, some cells down."""
    cells = world.cells[: data.draw(st.integers(1, len(world.cells)), label="cells")]
    placed = data.draw(_placed_instances(cells, max_rows), label="instances")
    key = st.sampled_from(STRING_KEYS) | st.sampled_from(SORT_KEYS)  # strings: half the time
    keys = data.draw(st.lists(key, min_size=1, max_size=3, unique=True), label="keys")
    dirs = data.draw(st.lists(st.sampled_from(["asc", "desc"]), max_size=len(keys)), label="dirs")
    project = data.draw(st.sampled_from([None, "p1"]), label="project filter")
    down = data.draw(st.sets(st.integers(0, len(cells) - 1)), label="down cells")
    records = data.draw(st.booleans(), label="down-cell records")
    strategy = data.draw(st.sampled_from(["distributed", "fixed"]), label="strategy")
    get_conf().set_override("list_batch_strategy", strategy, group="cells")
    # Batches sized by the API database's instance counts (stale ones too: they are
    # cached across examples), or split evenly.
    by_counts = data.draw(st.booleans(), label="batches by instance counts")
    get_conf().set_override("list_cells_by_mappings", by_counts, group="cells")

    world.load(placed)
    health.reset()
    for index in down:
        health.record_failure(cells[index], exception.CellUnavailable(cell="c", reason="test"))

    visible = []
    for index, row, mapping in placed:
        if row["deleted"] or project not in (None, row["project_id"]):
            continue
        if index not in down:
            visible.append(row)
        elif records:
            values = dict.fromkeys(SORT_KEYS) | {k: row[k] for k in MAPPING_FIELDS}
            visible.append(values | {"created_at": mapping["created_at"]})
    keys_, dirs_ = full_sort(keys, dirs)
    expected = expected_order(visible, keys_, dirs_)

    ctx = get_admin_context()
    filters = {"project_id": project} if project else {}
    walked: list[dict[str, Any]] = []
    marker = None
    for _ in range(len(expected) + 2):
        limit = data.draw(st.integers(1, 25), label="page size")
        result = list_instances(
            ctx,
            sort_keys=keys,
            sort_dirs=dirs,
            limit=limit,
            marker=marker,
            filters=filters,
            cells=cells,
            down_cell_records=records,
        )
        assert result.partial == bool(down)
        assert set(result.down_cells) == {cells[index].uuid for index in down}
        assert len(result.rows) <= limit
        walked.extend(result.rows)
        marker = result.next_marker
        if marker is None:
            break
        assert len(result.rows) == limit and marker == result.rows[-1]["uuid"]
    else:
        pytest.fail("the walk did not end")
    health.reset()

    def sort_values(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[key] for key in keys_)

    assert [row["uuid"] for row in walked] == [row["uuid"] for row in expected]
    assert [sort_values(row) for row in walked] == [sort_values(row) for row in expected]
    for row in walked:
        in_down_cell = "status" in row
        assert in_down_cell == (row["status"] == UNKNOWN_STATUS if in_down_cell else False)


def run_walk_property(world: ListingWorld, max_examples: int, max_rows: int = 40) -> None:
    """Run :func:`check_sorted_walk` as a hypothesis test against ``world``."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def walk_property(data: st.DataObject) -> None:
        check_sorted_walk(world, data, max_rows)

    walk_property()


def check_string_and_null_order(world: ListingWorld) -> None:
    """Every tricky string and NULL over the cells, walked one row per page, both ways."""
    placed = []
    for index, name in enumerate((*STRINGS, None)):
        uuid = f"00000000-0000-4000-8000-{index:012d}"
        row = {"uuid": uuid, "display_name": name, "project_id": "p1", "deleted": 0}
        at = index % len(world.cells)
        placed.append((at, row, {"instance_uuid": uuid, "cell_id": world.cells[at].id}))
    for _, _, mapping in placed:
        mapping["project_id"] = "p1"
    world.load(placed)
    ctx = get_admin_context()
    for direction in ("asc", "desc"):
        expected = expected_order(
            [row for _, row, _ in placed], *full_sort(["display_name"], [direction])
        )
        walked: list[Any] = []
        marker = None
        for _ in range(len(placed) + 1):
            page = list_instances(
                ctx, sort_keys=["display_name"], sort_dirs=[direction], limit=1, marker=marker
            )
            walked += [row["display_name"] for row in page.rows]
            marker = page.next_marker
            if marker is None:
                break
        assert walked == [row["display_name"] for row in expected]
