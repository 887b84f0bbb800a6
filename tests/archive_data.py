"""Cells full of instances with child rows, some soft-deleted, and the archive's invariants.

Shared by ``tests/unit/test_archive.py`` (SQLite) and
``tests/functional/test_archive_mariadb.py`` (MariaDB).
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid as uuidlib
from typing import Any

import sqlalchemy as sa

from cellrouter.db import cell_schema as cs
from cellrouter.db.api_schema import build_requests, instance_mappings, request_specs

#: child rows per instance, table by table (instance_actions_events: per action)
CHILDREN = {
    "instance_extra": 1,
    "instance_info_caches": 1,
    "instance_metadata": 2,
    "instance_system_metadata": 1,
    "instance_faults": 1,
    "block_device_mapping": 1,
    "virtual_interfaces": 1,
    "instance_actions": 2,
}
EVENTS_PER_ACTION = 2
ROWS_PER_INSTANCE = 1 + sum(CHILDREN.values()) + CHILDREN["instance_actions"] * EVENTS_PER_ACTION
DELETED_AT = datetime.datetime(2024, 1, 1)


@dataclasses.dataclass
class Cell:
    """What :func:`populate` put in one cell database."""

    url: str
    live: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def populate(
    url: str, live: int, deleted: int, *, deleted_at: datetime.datetime = DELETED_AT
) -> Cell:
    """Insert ``live`` + ``deleted`` instances (interleaved ids) with every kind of child row."""
    cell = Cell(url)
    instance_rows: list[dict[str, Any]] = []
    children: dict[str, list[dict[str, Any]]] = {name: [] for name in CHILDREN}
    events: list[dict[str, Any]] = []
    with _engine(url).begin() as conn:
        first = conn.execute(sa.select(sa.func.coalesce(sa.func.max(cs.instances.c.id), 0)))
        next_id = first.scalar_one() + 1
        first_action = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(cs.instance_actions.c.id), 0))
        ).scalar_one()
        action_id = first_action
        kinds = [True] * deleted + [False] * live
        kinds.sort(key=lambda _: uuidlib.uuid4().int)  # deleted and live ids interleave
        for offset, is_deleted in enumerate(kinds):
            instance_id = next_id + offset
            uuid = str(uuidlib.uuid4())
            (cell.deleted if is_deleted else cell.live).append(uuid)
            instance_rows.append(
                {
                    "id": instance_id,
                    "uuid": uuid,
                    "project_id": "p",
                    "host": "compute-1",
                    "vm_state": "deleted" if is_deleted else "active",
                    "created_at": DELETED_AT - datetime.timedelta(days=30),
                    "deleted": instance_id if is_deleted else 0,
                    "deleted_at": deleted_at if is_deleted else None,
                }
            )
            for name, count in CHILDREN.items():
                for n in range(count):
                    row: dict[str, Any] = {"instance_uuid": uuid}
                    if name == "instance_system_metadata":
                        row["key"] = f"k{n}"
                    elif name == "instance_faults":
                        row["code"] = 500
                    elif name == "virtual_interfaces":
                        row["address"] = f"{uuid}-{n}"
                    elif name == "instance_actions":
                        action_id += 1
                        row.update(id=action_id, action="create", created_at=DELETED_AT)
                        events += [{"action_id": action_id, "event": "e"}] * EVENTS_PER_ACTION
                    children[name].append(row)
        conn.execute(sa.insert(cs.instances), instance_rows)
        for name, rows in children.items():
            conn.execute(sa.insert(cs.metadata.tables[name]), rows)
        conn.execute(sa.insert(cs.instance_actions_events), events)
    return cell


def _family_ids(conn: sa.Connection, table: sa.Table, uuids: list[str]) -> set[int]:
    """Ids of ``table``'s rows (main or shadow) belonging to the instances ``uuids``."""
    name = table.name.removeprefix(cs.SHADOW_PREFIX)
    found: set[int] = set()
    for start in range(0, len(uuids), 500):
        chunk = uuids[start : start + 500]
        if name == "instances":
            where = table.c.uuid.in_(chunk)
        elif name == "instance_actions_events":
            actions = [cs.instance_actions, cs.shadow(cs.instance_actions)]
            ids = set()
            for a in actions:
                ids |= set(
                    conn.execute(sa.select(a.c.id).where(a.c.instance_uuid.in_(chunk))).scalars()
                )
            where = table.c.action_id.in_(sorted(ids))
        else:
            where = table.c.instance_uuid.in_(chunk)
        found |= set(conn.execute(sa.select(table.c.id).where(where)).scalars())
    return found


FAMILY_TABLES = ["instances", *CHILDREN, "instance_actions_events"]


def placement(url: str, uuids: list[str]) -> dict[str, tuple[set[int], set[int]]]:
    """table -> (ids in main, ids in shadow) of the rows of ``uuids``' families."""
    with _engine(url).connect() as conn:
        return {
            name: (
                _family_ids(conn, cs.metadata.tables[name], uuids),
                _family_ids(conn, cs.shadow(cs.metadata.tables[name]), uuids),
            )
            for name in FAMILY_TABLES
        }


def assert_archived_exactly_once(cell: Cell, expected_rows: int | None = None) -> None:
    """Every row of the deleted families in the shadows only; every live row in main only."""
    moved = placement(cell.url, cell.deleted)
    for name, (main, _) in moved.items():
        assert not main, f"{name}: {len(main)} deleted row(s) left in main"
    total = sum(len(shadow) for _, shadow in moved.values())
    assert total == (
        expected_rows if expected_rows is not None else len(cell.deleted) * ROWS_PER_INSTANCE
    )
    assert_live_untouched(cell)


def assert_live_untouched(cell: Cell) -> None:
    for name, (main, shadow) in placement(cell.url, cell.live).items():
        assert not shadow, f"{name}: live row(s) archived"
        per = 1 if name == "instances" else CHILDREN.get(name, 0)
        if name == "instance_actions_events":
            per = CHILDREN["instance_actions"] * EVENTS_PER_ACTION
        assert len(main) == per * len(cell.live), name


def assert_in_exactly_one(cell: Cell) -> None:
    """Each row of a deleted family is in main or in its shadow, never both, never neither."""
    for name, (main, shadow) in placement(cell.url, cell.deleted).items():
        assert not main & shadow, f"{name}: rows both in main and shadow"
        per = 1 if name == "instances" else CHILDREN.get(name, 0)
        if name == "instance_actions_events":
            per = CHILDREN["instance_actions"] * EVENTS_PER_ACTION
        assert len(main | shadow) == per * len(cell.deleted), f"{name}: rows lost"


def api_rows(api_url: str, uuids: list[str]) -> dict[str, int]:
    """How many instance mappings, build requests and request specs ``uuids`` have."""
    out = {}
    with _engine(api_url).connect() as conn:
        for table in (instance_mappings, build_requests, request_specs):
            n = 0
            for start in range(0, len(uuids), 500):
                chunk = uuids[start : start + 500]
                stmt = sa.select(sa.func.count()).where(table.c.instance_uuid.in_(chunk))
                n += conn.execute(stmt.select_from(table)).scalar_one()
            out[table.name] = n
    return out


def add_api_rows(api_url: str, uuids: list[str]) -> None:
    """Build requests and request specs for ``uuids`` (rows a real API leaves behind)."""
    now = datetime.datetime(2024, 1, 1)
    with _engine(api_url).begin() as conn:
        conn.execute(
            sa.insert(build_requests),
            [{"instance_uuid": u, "project_id": "p", "created_at": now} for u in uuids],
        )
        conn.execute(
            sa.insert(request_specs),
            [{"instance_uuid": u, "spec": "{}", "created_at": now} for u in uuids],
        )
