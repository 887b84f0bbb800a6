"""Moving soft-deleted rows of a cell database to its shadow tables, and purging those.

``db archive_deleted_rows`` empties every table of :data:`ARCHIVED_TABLES`
of its soft-deleted rows (``deleted != 0``), parents first, as Nova does: a
row goes with every row that refers to it by foreign key (an instance with
its faults, metadata, actions and their events, ...; those follow whatever
their own ``deleted`` says), so no row is ever left pointing at an archived
one.

One batch is one transaction of set-based statements, whatever its size:

1. the candidate keys: the first soft-deleted rows of the table by id, read
   without locks, then locked by primary key (``FOR UPDATE``: a concurrent
   run waits for this batch and then finds these rows gone; on SQLite the
   transaction begins IMMEDIATE: one writer at a time);
2. the prefix of them whose rows, children included, fit ``max_rows`` (one
   window-function query; the first row always fits, so every batch moves
   something);
3. per table of the family, parents first: ``INSERT INTO shadow_t SELECT ...
   WHERE key IN (...)``; for instances also their uuids into
   ``archive_unmaps``;
4. per table, children first: ``DELETE ... WHERE key IN (...)``, by the same
   keys; every table must lose exactly the rows its shadow gained, else the
   batch rolls back (a row written meanwhile) and is tried again.

A crash therefore leaves every row in exactly one of main and shadow, and a
rerun carries on where the last committed batch ended. The API-database side
(instance mappings, build requests, request specs) is the caller's, after
the cell's commit: ``archive_unmaps`` is that step's durable to-do list (see
:mod:`cellrouter.manage.archive`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from cellrouter.db import bulk
from cellrouter.db.cell_schema import ARCHIVED_TABLES, archive_unmaps, instances, shadow
from cellrouter.db.types import DateTime, utcnow

__all__ = [
    "BATCH_CAP",
    "Moved",
    "archive_batch",
    "forget_unmaps",
    "is_archived",
    "pending_unmaps",
    "purge",
]

#: Most parent rows one batch takes, whatever ``max_rows`` says: keeps every
#: IN list and transaction bounded.
BATCH_CAP = 5000
#: Values per IN list of the moves (SQLite allows 32766 parameters).
_IN = 5000
#: Attempts at a batch whose tables changed under it before giving up.
_ATTEMPTS = 5
#: Shadow tables purged by creation time: their rows are never soft-deleted
#: themselves (Nova's overrides).
_PURGE_BY_CREATED = {"instance_actions", "instance_actions_events"}


@dataclasses.dataclass(frozen=True, slots=True)
class Moved:
    """What one batch moved: rows per main table, and the instances among them."""

    rows: dict[str, int]
    instance_uuids: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclasses.dataclass(frozen=True, slots=True)
class _Node:
    """A table in the family of a batch's table: how it refers to its parent."""

    table: sa.Table
    fk: sa.ForeignKey | None = None  # this table's key to its parent's (None: the root)
    parent: _Node | None = None

    @property
    def refs(self) -> list[sa.Column[Any]]:
        """The columns of this table its children refer to."""
        return [fk.column for fk in _children_fks(self.table)]


def _children_fks(table: sa.Table) -> list[sa.ForeignKey]:
    return [
        fk for child in ARCHIVED_TABLES for fk in child.foreign_keys if fk.column.table is table
    ]


def _family(table: sa.Table) -> list[_Node]:
    """``table`` and every table referring to it, directly or not: parents before children."""
    nodes = [_Node(table)]
    for node in nodes:  # grows while iterated: breadth first
        nodes.extend(_Node(fk.parent.table, fk, node) for fk in _children_fks(node.table))
    return nodes


def _correlated(node: _Node) -> sa.ColumnElement[bool]:
    """``node``'s rows under the root row of the enclosing query."""
    assert node.fk is not None and node.parent is not None
    if node.parent.parent is None:
        return node.fk.parent == node.fk.column
    parent = sa.select(node.fk.column).where(_correlated(node.parent))
    return node.fk.parent.in_(parent.correlate_except(node.parent.table))


def _fitting(
    conn: sa.Connection, family: Sequence[_Node], ids: Sequence[int], max_rows: int
) -> list[int]:
    """The longest prefix of ``ids`` whose rows and descendants number about ``max_rows``.

    Like Nova's batches: parents are taken while fewer than ``max_rows`` rows
    were counted before them, so the first always goes and a batch ends at
    most one family over the limit.
    """
    root = family[0].table
    if len(family) == 1:
        return list(ids[:max_rows])
    weight: sa.ColumnElement[int] = sa.literal(1)
    for node in family[1:]:
        count = sa.select(sa.func.count()).select_from(node.table).where(_correlated(node))
        weight = weight + count.scalar_subquery()
    weighed = sa.select(root.c.id, weight.label("w")).where(root.c.id.in_(ids)).subquery()
    before = sa.func.sum(weighed.c.w).over(order_by=weighed.c.id) - weighed.c.w
    ranked = sa.select(weighed.c.id, before.label("before")).subquery()
    chosen = sa.select(ranked.c.id).where(ranked.c.before < max_rows).order_by(ranked.c.id)
    return list(conn.execute(chosen).scalars())


def _candidates(
    conn: sa.Connection, table: sa.Table, limit: int, before: datetime.datetime | None
) -> list[int]:
    """The ids of the first ``limit`` archivable rows of ``table``, locked for this transaction."""
    where = [table.c.deleted != 0]
    if before is not None:
        where.append(table.c.deleted_at < before)
    read = sa.select(table.c.id).where(*where).order_by(table.c.id).limit(limit)
    ids = list(conn.execute(read).scalars())
    if not ids or conn.dialect.name == "sqlite":  # SQLite: the IMMEDIATE transaction locks
        return ids
    # Lock by primary key only (a locking range read would lock live rows too);
    # rows a concurrent run archived meanwhile are gone once its lock is released.
    lock = sa.select(table.c.id).where(table.c.id.in_(ids), *where).order_by(table.c.id)
    return list(conn.execute(lock.with_for_update()).scalars())


def _move(conn: sa.Connection, family: Sequence[_Node], ids: Sequence[int]) -> Moved | None:
    """Copy the rows of ``ids`` and their descendants to the shadows, then delete them.

    None when a table lost other rows than its shadow gained (written meanwhile).
    """
    keys: dict[tuple[str, str], list[Any]] = {}  # (table, column) -> values children refer to
    plan: list[tuple[_Node, sa.Column[Any], list[Any]]] = []
    for node in family:
        if node.fk is None:
            column, values = node.table.c.id, list(ids)
        else:
            column = node.fk.parent
            values = keys[(node.fk.column.table.name, node.fk.column.name)]
        plan.append((node, column, values))
        for ref in node.refs:
            if (node.table.name, ref.name) not in keys:
                found: list[Any] = []
                for chunk in bulk.chunks(values, _IN):
                    found += conn.execute(sa.select(ref).where(column.in_(chunk))).scalars()
                keys[(node.table.name, ref.name)] = found
    copied: dict[str, int] = {}
    for node, column, values in plan:
        table = node.table
        names = [c.name for c in table.columns]
        for chunk in bulk.chunks(values, _IN):
            select = sa.select(*table.columns).where(column.in_(chunk))
            result = conn.execute(shadow(table).insert().from_select(names, select))
            copied[table.name] = copied.get(table.name, 0) + result.rowcount
    uuids: tuple[str, ...] = ()
    if family[0].table is instances:
        uuids = tuple(keys[("instances", "uuid")])
        now = sa.literal(utcnow(), DateTime)
        for chunk in bulk.chunks(ids, _IN):
            rows = sa.select(instances.c.uuid, now).where(instances.c.id.in_(chunk))
            conn.execute(archive_unmaps.insert().from_select(["instance_uuid", "created_at"], rows))
    deleted: dict[str, int] = {}
    for node, column, values in reversed(plan):
        table = node.table
        for chunk in bulk.chunks(values, _IN):
            result = conn.execute(sa.delete(table).where(column.in_(chunk)))
            deleted[table.name] = deleted.get(table.name, 0) + result.rowcount
    if deleted != copied:
        return None
    return Moved({name: count for name, count in deleted.items() if count}, uuids)


def _batch(
    engine: sa.Engine, table: sa.Table, max_rows: int, before: datetime.datetime | None
) -> Moved | None:
    family = _family(table)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":  # take the write lock before reading
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        ids = _candidates(conn, table, min(max_rows, BATCH_CAP), before)
        if not ids:
            conn.commit()
            return Moved({})
        moved = _move(conn, family, _fitting(conn, family, ids, max_rows))
        if moved is None:
            conn.rollback()
        else:
            conn.commit()
        return moved


def archive_batch(
    engine: sa.Engine, table: sa.Table, max_rows: int, before: datetime.datetime | None = None
) -> Moved:
    """Move one batch of ``table``'s soft-deleted rows (deleted before ``before``, if
    given) with their descendants to the shadow tables: about ``max_rows`` rows in
    all, in one transaction (retried on deadlock). Nothing moved: none left."""
    for _ in range(_ATTEMPTS - 1):
        moved = bulk.retry_on_deadlock(_batch, engine, table, max_rows, before)
        if moved is not None:
            return moved
    moved = bulk.retry_on_deadlock(_batch, engine, table, max_rows, before)
    return moved if moved is not None else Moved({})


def pending_unmaps(engine: sa.Engine, limit: int = bulk.IN_CHUNK, after: str = "") -> list[str]:
    """Up to ``limit`` uuids of archived instances whose API rows may remain, after ``after``."""
    key = archive_unmaps.c.instance_uuid
    read = sa.select(key).where(key > after).order_by(key).limit(limit)
    with engine.connect() as conn:
        return list(conn.execute(read).scalars())


def forget_unmaps(engine: sa.Engine, instance_uuids: Sequence[str]) -> None:
    """Strike these instances off ``archive_unmaps``: their API rows are gone.

    A concurrent run may strike the same rows: retried on deadlock."""
    bulk.retry_on_deadlock(_forget_unmaps, engine, instance_uuids)


def _forget_unmaps(engine: sa.Engine, instance_uuids: Sequence[str]) -> None:
    key = archive_unmaps.c.instance_uuid
    with engine.begin() as conn:
        for chunk in bulk.chunks(instance_uuids):
            conn.execute(sa.delete(archive_unmaps).where(key.in_(chunk)))


def is_archived(conn: sa.Connection, instance_uuid: str) -> bool:
    """Whether ``instance_uuid`` is in the cell's ``shadow_instances``."""
    table = shadow(instances)
    read = sa.select(table.c.id).where(table.c.uuid == instance_uuid).limit(1)
    return conn.execute(read).first() is not None


def _purge_batch(
    engine: sa.Engine, table: sa.Table, where: list[sa.ColumnElement[bool]], batch: int
) -> tuple[int, int]:
    """Delete up to ``batch`` shadow rows in one transaction: (rows found, rows deleted)."""
    with engine.begin() as conn:
        read = sa.select(table.c.id).where(*where).order_by(table.c.id).limit(batch)
        ids = list(conn.execute(read).scalars())
        deleted = sum(
            conn.execute(sa.delete(table).where(table.c.id.in_(chunk))).rowcount
            for chunk in bulk.chunks(ids, _IN)
        )
    return len(ids), deleted


def _purge_column(table: sa.Table) -> sa.Column[Any]:
    return table.c.created_at if table.name in _PURGE_BY_CREATED else table.c.deleted_at


def purge(
    engine: sa.Engine,
    before: datetime.datetime | None,
    status: Callable[[str, str, int], None] | None = None,
    batch: int = 10 * BATCH_CAP,
) -> dict[str, int]:
    """Delete the shadow rows archived before ``before`` (None: all of them), in
    batches of ``batch`` rows; returns rows deleted per shadow table.

    ``before`` compares with ``deleted_at``, or ``created_at`` for instance
    actions and their events (never soft-deleted themselves), as Nova does; a
    row without that timestamp stays. ``status(table, column, rows)`` is told
    each table's count.
    """
    purged: dict[str, int] = {}
    for main in ARCHIVED_TABLES:
        table = shadow(main)
        column = _purge_column(table)
        where = [] if before is None else [column < before]
        total = 0
        while True:
            found, deleted = bulk.retry_on_deadlock(_purge_batch, engine, table, where, batch)
            total += deleted
            if found < batch:
                break
        if total:
            purged[table.name] = total
            if status is not None:
                status(table.name, "(n/a)" if before is None else column.name, total)
    return purged
