"""The mapping store: the one writer of the mapping index in the API database.

It writes ``cell_mappings``, ``host_mappings``, ``instance_mappings``,
``build_requests`` and ``instance_mapping_markers`` (and bumps
``cell_generation``; deletes the ``request_specs`` of archived instances); no
other module does (``tests/unit/test_index_store.py`` keeps that rule). Every
write is one transaction, in this order:

1. its statements;
2. when a cell was created, updated or deleted: the ``cell_generation`` bump,
   so :meth:`~MappingStore.generation` moves for every process;
3. the write hooks (:meth:`~MappingStore.add_write_hook`): ``hook(conn, kind,
   keys)`` inside the transaction, seeing the uncommitted write; a hook that
   raises rolls the write back;
4. for an unmapping, the step in the cell's database
   (:mod:`cellrouter.db.two_phase`: the cell first, then the API database);
5. COMMIT;
6. the change notices (:func:`cellrouter.index.events.mapping_changed`), one
   per kind with every key the write changed, and never for a rolled-back
   write. This module is their only caller.

Reads are :class:`~cellrouter.index.queries.MappingReader`'s.
"""

from __future__ import annotations

import contextlib
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cellrouter import exception, forksafe
from cellrouter.db import bulk
from cellrouter.db.api_schema import (
    build_requests,
    cell_generation,
    cell_mappings,
    host_mappings,
    instance_mapping_markers,
    instance_mappings,
    request_specs,
)
from cellrouter.db.database import api_engine
from cellrouter.db.two_phase import CellStep, cell_then_api
from cellrouter.db.types import utcnow
from cellrouter.index import events, use_store
from cellrouter.index.api import NewInstanceMapping, Unmapped, WriteHook
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CellMapping, check_cell_values
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.index.queries import GENERATION_ROW, MappingReader, host_cells, read_marker

__all__ = ["STORE", "MappingStore", "advance_marker"]

_markers = instance_mapping_markers
_BUMP = (
    sa.update(cell_generation)
    .where(cell_generation.c.id == GENERATION_ROW)
    .values(generation=cell_generation.c.generation + 1)
)


class _Write:
    """One open write transaction and what it changed, kind by kind."""

    __slots__ = ("changes", "conn")

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.changes: list[tuple[events.Kind, tuple[str, ...]]] = []

    def changed(self, kind: events.Kind, keys: Iterable[str]) -> None:
        frozen = tuple(keys)
        if frozen:
            self.changes.append((kind, frozen))


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key of the row a single-row INSERT created."""
    key = result.inserted_primary_key
    assert key is not None, "a single-row INSERT has a primary key"
    return int(key[0])


def _bump_generation(conn: sa.Connection) -> None:
    if conn.execute(_BUMP).rowcount == 0:  # the row was deleted by hand: bring it back
        row = {"id": GENERATION_ROW, "generation": 0}
        bulk.insert_ignore(conn, cell_generation, [row], cell_generation.c.id)
        conn.execute(_BUMP)


def advance_marker(conn: sa.Connection, cell_id: int, last_id: int) -> int:
    """Move the cell's map_instances marker forward to ``last_id`` (never back), on
    ``conn``; return the stored value.

    The UPDATE comes first so it locks the marker row at the start of the
    batch transaction: concurrent runs on one cell then take turns instead
    of deadlocking on each other's mappings (and SQLite takes its write lock
    up front, waiting politely instead of failing on a stale snapshot).
    """
    now = utcnow()
    forward = (
        sa.update(_markers)
        .where(_markers.c.cell_id == cell_id)
        .values(
            last_instance_id=sa.case(
                (_markers.c.last_instance_id < last_id, last_id),
                else_=_markers.c.last_instance_id,
            ),
            updated_at=now,
        )
    )
    if conn.execute(forward).rowcount == 0:
        first = {"cell_id": cell_id, "last_instance_id": last_id, "created_at": now}
        if not bulk.insert_ignore(conn, _markers, [first], _markers.c.cell_id):
            conn.execute(forward)  # another run created the row meanwhile
    stored = read_marker(conn, cell_id)
    return last_id if stored is None else stored


def _instance_rows(
    cell: CellMapping | None, mappings: Iterable[NewInstanceMapping]
) -> list[dict[str, Any]]:
    now = utcnow()
    cell_id = cell.id if cell is not None else None
    return [
        {
            "instance_uuid": m.instance_uuid,
            "cell_id": cell_id,
            "project_id": m.project_id,
            "user_id": m.user_id,
            "queued_for_delete": m.queued_for_delete,
            "created_at": now,
        }
        for m in mappings
    ]


def _insert_instances(write: _Write, rows: Sequence[dict[str, Any]]) -> list[str]:
    key = instance_mappings.c.instance_uuid
    created = bulk.insert_ignore(write.conn, instance_mappings, rows, key, skip_existing=True)
    write.changed("instance", created)
    return created


def _by_instance_uuids(write: _Write, uuids: Iterable[str], stmt: sa.Update | sa.Delete) -> int:
    """``stmt`` on the instance mappings of ``uuids`` (IN lists of 500); how many rows it hit."""
    keys = list(dict.fromkeys(uuids))
    column = instance_mappings.c.instance_uuid
    hit = sum(
        write.conn.execute(stmt.where(column.in_(chunk))).rowcount for chunk in bulk.chunks(keys)
    )
    if hit:
        write.changed("instance", keys)
    return hit


def _delete_of_cell(write: _Write, key: sa.Column[Any], cell: CellMapping) -> list[str]:
    """Delete every row of ``key``'s table that maps to ``cell``; return their keys.

    Two statements whatever the count: the keys (for hooks and notices), then one DELETE.
    """
    table = key.table
    of_cell = table.c.cell_id == cell.id
    keys = list(write.conn.execute(sa.select(key).where(of_cell)).scalars())
    write.conn.execute(sa.delete(table).where(of_cell))
    return keys


class MappingStore(MappingReader):
    """Every read and write of the mapping index over ``[api_database]``."""

    def __init__(self) -> None:
        self._hooks: tuple[WriteHook, ...] = ()
        self._lock = forksafe.Lock()

    def add_write_hook(self, hook: WriteHook) -> None:
        """Call ``hook`` inside every later write transaction (see the module docstring)."""
        with self._lock:
            if hook not in self._hooks:
                self._hooks = (*self._hooks, hook)

    def remove_write_hook(self, hook: WriteHook) -> None:
        with self._lock:
            self._hooks = tuple(h for h in self._hooks if h != hook)

    @contextlib.contextmanager
    def _write(self, then: CellStep | None = None) -> Iterator[_Write]:
        """One write transaction: the body's statements, then steps 2 to 6 above."""
        engine = api_engine()
        transaction = engine.begin() if then is None else cell_then_api(engine, then)
        with transaction as conn:
            write = _Write(conn)
            yield write
            if any(kind == "cell" for kind, _ in write.changes):
                _bump_generation(conn)
            hooks = self._hooks
            for kind, keys in write.changes:
                for hook in hooks:
                    hook(conn, kind, keys)
        for kind, keys in write.changes:
            events.mapping_changed(kind, keys)

    # -- cells ----------------------------------------------------------------

    def create_cell(
        self,
        *,
        database_connection: str,
        transport_url: str,
        name: str | None = None,
        uuid: str | None = None,
        disabled: bool = False,
    ) -> CellMapping:
        """Map a new cell (CellMappingExists). URLs are validated (templates after formatting)."""
        values: dict[str, Any] = {
            "name": name,
            "database_connection": database_connection,
            "transport_url": transport_url,
            "disabled": disabled,
        }
        check_cell_values(values)
        cell_uuid = uuid or str(uuidlib.uuid4())
        values.update(uuid=cell_uuid, created_at=utcnow(), updated_at=None)
        try:
            with self._write() as write:
                result = write.conn.execute(sa.insert(cell_mappings).values(values))
                write.changed("cell", [cell_uuid])
        except sa.exc.IntegrityError:
            raise exception.CellMappingExists(uuid=cell_uuid) from None
        return CellMapping.from_row({**values, "id": _inserted_id(result)})

    def update_cell(self, cell: CellMapping, changes: Mapping[str, Any]) -> CellMapping:
        """Set the given fields (``CELL_FIELDS``) of ``cell``; no changes: ``cell`` as is."""
        check_cell_values(changes)
        if not changes:
            return cell
        by_uuid = cell_mappings.c.uuid == cell.uuid
        with self._write() as write:
            values = {**changes, "updated_at": utcnow()}
            stmt = sa.update(cell_mappings).where(by_uuid).values(values)
            if write.conn.execute(stmt).rowcount == 0:
                raise exception.CellMappingNotFound(uuid=cell.uuid)
            row = write.conn.execute(sa.select(cell_mappings).where(by_uuid)).one()
            write.changed("cell", [cell.uuid])
        return CellMapping.from_row(row)

    def delete_cell(
        self, cell: CellMapping, *, force: bool = False, then: CellStep | None = None
    ) -> Unmapped:
        """Unmap ``cell``; ``force`` deletes its host and instance mappings with it.

        Without ``force`` a cell that still has mappings is refused
        (CellHasHosts, CellHasInstances) by the foreign keys, so a mapping
        created meanwhile is never deleted unasked. ``then``: a step in the
        cell's database, committed just before this (see :mod:`~cellrouter.db.two_phase`).
        """
        instances: list[str] = []
        hosts: list[str] = []
        try:
            with self._write(then) as write:
                if force:
                    instances = _delete_of_cell(write, instance_mappings.c.instance_uuid, cell)
                    hosts = _delete_of_cell(write, host_mappings.c.host, cell)
                    write.changed("instance", instances)
                    write.changed("host", hosts)
                stmt = sa.delete(cell_mappings).where(cell_mappings.c.id == cell.id)
                if not write.conn.execute(stmt).rowcount:
                    raise exception.CellMappingNotFound(uuid=cell.uuid)
                write.changed("cell", [cell.uuid])
        except sa.exc.IntegrityError:
            if self.count_hosts(cell.uuid):
                raise exception.CellHasHosts(uuid=cell.uuid) from None
            raise exception.CellHasInstances(uuid=cell.uuid) from None
        return Unmapped(len(instances), len(hosts))

    # -- hosts ----------------------------------------------------------------

    def create_host(self, host: str, cell: CellMapping) -> HostMapping:
        """Map ``host`` to ``cell`` (HostMappingExists names the cell it is mapped to)."""
        exception.InvalidValue.require(host=host)
        now = utcnow()
        try:
            with self._write() as write:
                stmt = sa.insert(host_mappings).values(host=host, cell_id=cell.id, created_at=now)
                result = write.conn.execute(stmt)
                write.changed("host", [host])
        except sa.exc.IntegrityError:
            try:
                existing = self.host(host).cell_mapping.identity
            except exception.HostMappingNotFound:  # the cell vanished meanwhile
                raise exception.CellMappingNotFound(uuid=cell.uuid) from None
            raise exception.HostMappingExists(host=host, cell=existing) from None
        return HostMapping(_inserted_id(result), host, cell, created_at=now)

    def map_hosts(
        self, cell: CellMapping, hosts: Sequence[str]
    ) -> tuple[list[str], dict[str, str]]:
        """Map the unmapped of ``hosts`` to ``cell``, in one transaction (retried on deadlock).

        Set-based and safe against concurrent runs: one read of the existing
        mappings, one "insert, skip duplicates". Returns (the hosts this call
        mapped, sorted; host -> cell uuid of every mapped host among ``hosts``,
        wherever it is mapped).
        """
        return bulk.retry_on_deadlock(self._map_hosts, cell, hosts)

    def _map_hosts(
        self, cell: CellMapping, hosts: Sequence[str]
    ) -> tuple[list[str], dict[str, str]]:
        with self._write() as write:
            mapped = host_cells(write.conn, hosts)
            missing = [host for host in hosts if host not in mapped]
            now = utcnow()
            rows = [{"host": host, "cell_id": cell.id, "created_at": now} for host in missing]
            inserted = sorted(
                bulk.insert_ignore(write.conn, host_mappings, rows, host_mappings.c.host)
            )
            mapped.update(dict.fromkeys(inserted, cell.uuid))
            write.changed("host", inserted)
        raced = [host for host in missing if host not in mapped]
        if raced:  # mapped by a concurrent run after our read: learn where, now it committed
            with api_engine().connect() as conn:
                mapped.update(host_cells(conn, raced))
        return inserted, mapped

    def delete_host(
        self, host: str, *, cell: CellMapping | None = None, then: CellStep | None = None
    ) -> None:
        """Unmap ``host`` (HostMappingNotFound; with ``cell``: unless mapped to that cell).

        ``then``: a step in the cell's database, committed just before this.
        """
        stmt = sa.delete(host_mappings).where(host_mappings.c.host == host)
        if cell is not None:
            stmt = stmt.where(host_mappings.c.cell_id == cell.id)
        with self._write(then) as write:
            if not write.conn.execute(stmt).rowcount:
                raise exception.HostMappingNotFound(host=host)
            write.changed("host", [host])

    # -- instances ------------------------------------------------------------

    def create_instance(
        self,
        *,
        instance_uuid: str,
        project_id: str,
        user_id: str | None = None,
        cell: CellMapping | None = None,
        queued_for_delete: bool = False,
    ) -> InstanceMapping:
        """Map one instance (to no cell yet: still building); InstanceMappingExists."""
        exception.InvalidValue.require(instance_uuid=instance_uuid, project_id=project_id)
        queued = queued_for_delete
        new = NewInstanceMapping(instance_uuid, project_id, user_id, queued)
        (values,) = _instance_rows(cell, [new])
        try:
            with self._write() as write:
                result = write.conn.execute(sa.insert(instance_mappings).values(values))
                write.changed("instance", [instance_uuid])
        except sa.exc.IntegrityError:
            if cell is not None and cell.id not in {c.id for c in self.cells()}:
                raise exception.CellMappingNotFound(uuid=cell.uuid) from None
            raise exception.InstanceMappingExists(uuid=instance_uuid) from None
        new_id, created = _inserted_id(result), values["created_at"]
        return InstanceMapping(new_id, instance_uuid, cell, project_id, user_id, queued, created)

    def create_instances(
        self, cell: CellMapping | None, mappings: Sequence[NewInstanceMapping]
    ) -> list[str]:
        """Map the instances of ``mappings`` not mapped yet to ``cell``, in one transaction
        ("insert, skip duplicates"); returns the uuids this call mapped."""
        rows = _instance_rows(cell, mappings)
        with self._write() as write:
            return _insert_instances(write, rows)

    def map_instance_batch(
        self, cell: CellMapping, last_id: int, mappings: Sequence[NewInstanceMapping]
    ) -> tuple[list[str], int]:
        """One map_instances batch: create the missing ``mappings`` in ``cell`` and move the
        cell's marker to ``last_id``, atomically (retried on deadlock).

        Returns (uuids this call mapped, the marker as stored now).
        """
        rows = _instance_rows(cell, mappings)  # built outside the transaction
        return bulk.retry_on_deadlock(self._map_instance_batch, cell.id, last_id, rows)

    def _map_instance_batch(
        self, cell_id: int, last_id: int, rows: Sequence[dict[str, Any]]
    ) -> tuple[list[str], int]:
        with self._write() as write:
            stored = advance_marker(write.conn, cell_id, last_id)
            return _insert_instances(write, rows), stored

    def reset_marker(self, cell_id: int) -> None:
        """Forget the cell's map_instances marker: the next run rescans the cell."""
        with self._write() as write:
            write.conn.execute(sa.delete(_markers).where(_markers.c.cell_id == cell_id))

    def set_instances_cell(self, instance_uuids: Iterable[str], cell: CellMapping) -> int:
        """Record that these instances now live in ``cell``; returns how many are mapped."""
        try:
            return self._update_instances(instance_uuids, {"cell_id": cell.id})
        except sa.exc.IntegrityError:
            raise exception.CellMappingNotFound(uuid=cell.uuid) from None

    def set_instance_cell(self, instance_uuid: str, cell: CellMapping) -> None:
        if not self.set_instances_cell([instance_uuid], cell):
            raise exception.InstanceMappingNotFound(uuid=instance_uuid)

    def set_queued_for_delete(self, instance_uuid: str, queued: bool = True) -> None:
        if not self._update_instances([instance_uuid], {"queued_for_delete": queued}):
            raise exception.InstanceMappingNotFound(uuid=instance_uuid)

    def _update_instances(self, instance_uuids: Iterable[str], values: dict[str, Any]) -> int:
        stmt = sa.update(instance_mappings).values({**values, "updated_at": utcnow()})
        with self._write() as write:
            return _by_instance_uuids(write, instance_uuids, stmt)

    def delete_instances(self, instance_uuids: Iterable[str]) -> int:
        """Delete the mappings of ``instance_uuids`` in one transaction; returns how many."""
        with self._write() as write:
            return _by_instance_uuids(write, instance_uuids, sa.delete(instance_mappings))

    def delete_instance(self, instance_uuid: str) -> None:
        if not self.delete_instances([instance_uuid]):
            raise exception.InstanceMappingNotFound(uuid=instance_uuid)

    def delete_archived_instances(self, instance_uuids: Sequence[str]) -> dict[str, int]:
        """Delete what the API database keeps of archived instances (their mappings,
        build requests and request specs) in one transaction, retried on deadlock;
        returns rows deleted per table. Called once their cell committed the archive."""
        return bulk.retry_on_deadlock(self._delete_archived_instances, instance_uuids)

    def _delete_archived_instances(self, instance_uuids: Sequence[str]) -> dict[str, int]:
        keys = list(dict.fromkeys(instance_uuids))
        with self._write() as write:
            mappings = _by_instance_uuids(write, keys, sa.delete(instance_mappings))
            counts = {"instance_mappings": mappings}
            for table in (build_requests, request_specs):
                column = table.c.instance_uuid
                counts[table.name] = sum(
                    write.conn.execute(sa.delete(table).where(column.in_(chunk))).rowcount
                    for chunk in bulk.chunks(keys)
                )
        return counts

    # -- build requests ---------------------------------------------------------

    def create_build_request(
        self,
        *,
        instance_uuid: str,
        project_id: str,
        instance: str | None = None,
        block_device_mappings: str | None = None,
        tags: str | None = None,
    ) -> BuildRequest:
        """Keep an instance being built (BuildRequestExists)."""
        exception.InvalidValue.require(instance_uuid=instance_uuid, project_id=project_id)
        values: dict[str, Any] = {
            "instance_uuid": instance_uuid,
            "project_id": project_id,
            "instance": instance,
            "block_device_mappings": block_device_mappings,
            "tags": tags,
            "created_at": utcnow(),
            "updated_at": None,
        }
        try:
            with self._write() as write:
                result = write.conn.execute(sa.insert(build_requests).values(values))
        except sa.exc.IntegrityError:
            raise exception.BuildRequestExists(uuid=instance_uuid) from None
        return BuildRequest(id=_inserted_id(result), **values)

    def delete_build_request(self, instance_uuid: str) -> None:
        stmt = sa.delete(build_requests).where(build_requests.c.instance_uuid == instance_uuid)
        with self._write() as write:
            if not write.conn.execute(stmt).rowcount:
                raise exception.BuildRequestNotFound(uuid=instance_uuid)


#: The process's store: what :func:`cellrouter.index.mapping_store` returns
#: unless :func:`cellrouter.index.use_store` put another in its place.
STORE = MappingStore()
use_store(STORE)
