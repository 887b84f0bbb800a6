"""Cell mappings: cell uuid -> (database URL, transport URL), in the API database.

Records are small immutable values read with SQLAlchemy Core. URLs are stored
as given (possibly templates, see :mod:`cellrouter.url`) and formatted once,
when a record is read. Every write goes through :class:`CellMapping`'s
``create``/``update``/``destroy`` and announces itself on
:mod:`cellrouter.index.events`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import operator
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import exception
from cellrouter.conf import get_conf
from cellrouter.db.api_schema import cell_mappings, host_mappings, instance_mappings
from cellrouter.db.database import api_engine
from cellrouter.db.engine import parse_db_url
from cellrouter.db.types import utcnow
from cellrouter.index import events
from cellrouter.url import check_url, format_url, mask_url

__all__ = ["CELL0_UUID", "CellMapping", "format_cell_url", "validate_transport_url"]

#: The well-known uuid of cell0, where instances that could not be scheduled live.
CELL0_UUID = "00000000-0000-0000-0000-000000000000"
#: cell0 has no message queue.
NO_TRANSPORT_URL = "none:///"

_UNSET: Any = object()

#: cell_mappings columns labelled ``cm_<name>``, for joins from other tables.
JOINED_COLUMNS = tuple(c.label(f"cm_{c.name}") for c in cell_mappings.c)


#: column order of cell_mappings: what from_values() unpacks
_ROW_FIELDS = tuple(column.name for column in cell_mappings.c)
#: row values -> record; replaced entries are harmless (records are immutable)
_records: dict[tuple[Any, ...], CellMapping] = {}
_MAX_RECORDS = 4096


@functools.lru_cache(maxsize=8)
def _row_getter(prefix: str) -> Callable[[Any], tuple[Any, ...]]:
    return operator.itemgetter(*(prefix + name for name in _ROW_FIELDS))


_BY_UUID = sa.select(cell_mappings).where(cell_mappings.c.uuid == sa.bindparam("uuid"))


def format_cell_url(template: str, kind: str, strict: bool = True) -> str:
    """A stored cell URL as this process connects to it (templates filled from config).

    ``strict=False`` returns an unfillable template as is (listing must not
    fail); targeting and writes use the strict form, which raises InvalidURL.
    """
    if "{" not in template:
        return template
    conf = get_conf()
    default = conf.database.connection if kind == "database" else conf.transport_url
    try:
        return format_url(template, default, kind)
    except exception.InvalidURL:
        if strict:
            raise
        return template


def validate_transport_url(url: str) -> None:
    """Raise :class:`~cellrouter.exception.InvalidURL` (masked) unless ``url`` is a
    well-formed transport URL (:func:`~cellrouter.url.check_url`) that
    oslo.messaging parses, with a driver it knows. Nothing connects."""
    check_url(url, "transport")
    from cellrouter.cells import messaging  # late: imports oslo.messaging

    messaging.check_transport_url(url)


def _validate(
    name: str | None = None,
    database_connection: str | None = _UNSET,
    transport_url: str | None = _UNSET,
) -> None:
    """Raise InvalidValue/InvalidURL for whichever of these values is given and unusable.

    A URL is checked as given first (a template's structure, placeholders
    standing for valid parts), then as this process fills it in.
    """
    limit = cell_mappings.c.name.type.length
    if name is not None and len(name) > limit:
        raise exception.InvalidValue(what="cell name", reason=f"longer than {limit} characters")
    if database_connection is not _UNSET:
        check_url(database_connection or "", "database")
        parse_db_url(format_cell_url(database_connection or "", "database"))
    if transport_url is not _UNSET:
        check_url(transport_url or "", "transport")
        validate_transport_url(format_cell_url(transport_url or "", "transport"))


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class CellMapping:
    """Where one cell's database and message queue are."""

    id: int
    uuid: str
    name: str | None
    #: formatted URLs: what this process connects to
    database_connection: str
    transport_url: str
    disabled: bool = False
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None
    #: the URLs as stored (may be templates); what updates keep
    database_connection_template: str = ""
    transport_url_template: str = ""

    def __repr__(self) -> str:
        return (
            f"CellMapping(uuid={self.uuid!r}, name={self.name!r}, "
            f"database_connection={mask_url(self.database_connection)!r}, "
            f"transport_url={mask_url(self.transport_url)!r}, disabled={self.disabled!r})"
        )

    __str__ = __repr__

    def unfilled_urls(self) -> list[tuple[str, str]]:
        """(kind, template) of the URLs this process could not fill from its config."""
        return [
            (kind, template)
            for kind, template, formatted in (
                ("database", self.database_connection_template, self.database_connection),
                ("transport", self.transport_url_template, self.transport_url),
            )
            if "{" in template and formatted == template
        ]

    def is_cell0(self) -> bool:
        return self.uuid == CELL0_UUID

    @property
    def identity(self) -> str:
        """How logs and messages name this cell (never with its URLs)."""
        return f"{self.name}({self.uuid})" if self.name else self.uuid

    # -- reading ------------------------------------------------------------

    @classmethod
    def from_row(cls, row: Row[Any] | dict[str, Any], prefix: str = "") -> CellMapping:
        """The record of a ``cell_mappings`` row (columns named ``prefix`` + column name).

        Records are immutable, so rows with the same values share one record:
        a hot lookup that joins the cell skips building it again.
        """
        m = row if isinstance(row, dict) else row._mapping
        return cls.from_values(_row_getter(prefix)(m))

    @classmethod
    def from_values(cls, values: tuple[Any, ...]) -> CellMapping:
        """The record of a ``cell_mappings`` row given as a tuple in column order."""
        cached = _records.get(values)
        if cached is not None:
            return cached
        id_, uuid_, name, mq_tpl, db_tpl, disabled, created_at, updated_at = values
        record = cls(
            id=id_,
            uuid=uuid_,
            name=name,
            database_connection=format_cell_url(db_tpl, "database", strict=False),
            transport_url=format_cell_url(mq_tpl, "transport", strict=False),
            disabled=bool(disabled),
            created_at=created_at,
            updated_at=updated_at,
            database_connection_template=db_tpl,
            transport_url_template=mq_tpl,
        )
        if "{" not in db_tpl and "{" not in mq_tpl:  # templates depend on config: not shared
            if len(_records) >= _MAX_RECORDS:
                _records.clear()
            _records[values] = record
        return record

    @classmethod
    def _select_all(
        cls, stmt: sa.Select[Any], params: dict[str, Any] | None = None
    ) -> list[CellMapping]:
        with api_engine().connect() as conn:
            return [cls.from_row(row) for row in conn.execute(stmt, params)]

    @classmethod
    def get_by_uuid(cls, ctx: object, cell_uuid: str) -> CellMapping:
        rows = cls._select_all(_BY_UUID, {"uuid": cell_uuid})
        if not rows:
            raise exception.CellMappingNotFound(uuid=cell_uuid)
        return rows[0]

    @classmethod
    def get_all(cls, ctx: object) -> list[CellMapping]:
        """Every cell, in creation order (cell0 first when it was mapped first)."""
        return cls._select_all(sa.select(cell_mappings).order_by(cell_mappings.c.id))

    @classmethod
    def get_by_disabled(cls, ctx: object, disabled: bool) -> list[CellMapping]:
        return cls._select_all(
            sa.select(cell_mappings)
            .where(cell_mappings.c.disabled == bool(disabled))
            .order_by(cell_mappings.c.id)
        )

    @classmethod
    def get_by_project(cls, ctx: object, project_id: str) -> list[CellMapping]:
        """The cells where ``project_id`` has (mapped) instances."""
        cells_with_project = (
            sa.select(instance_mappings.c.cell_id)
            .where(instance_mappings.c.project_id == project_id)
            .where(instance_mappings.c.cell_id.is_not(None))
            .distinct()
        )
        return cls._select_all(
            sa.select(cell_mappings)
            .where(cell_mappings.c.id.in_(cells_with_project))
            .order_by(cell_mappings.c.id)
        )

    def uses_url(self, kind: str, url: str) -> bool:
        """Whether this cell's ``kind`` ("database"/"transport") URL is ``url``.

        Compares both as stored and as formatted here, on either side, so a
        template and the URL it expands to are the same URL. cell0's
        ``none:///`` is shared by design and never matches.
        """
        if not url or url == NO_TRANSPORT_URL:
            return False
        if kind == "database":
            mine = (self.database_connection, self.database_connection_template)
        else:
            mine = (self.transport_url, self.transport_url_template)
        return url in mine or format_cell_url(url, kind, strict=False) in mine

    @classmethod
    def get_by_urls(
        cls,
        ctx: object,
        database_connection: str | None = None,
        transport_url: str | None = None,
    ) -> list[CellMapping]:
        """Cells using either URL (as stored or as formatted here)."""
        return [
            cell
            for cell in cls.get_all(ctx)
            if (database_connection and cell.uses_url("database", database_connection))
            or (transport_url and cell.uses_url("transport", transport_url))
        ]

    # -- writing ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        ctx: object,
        *,
        database_connection: str,
        transport_url: str,
        name: str | None = None,
        uuid: str | None = None,
        disabled: bool = False,
    ) -> CellMapping:
        """Map a new cell. URLs are validated (templates after formatting)."""
        _validate(name, database_connection, transport_url)
        cell_uuid = uuid or str(uuidlib.uuid4())
        now = utcnow()
        values = {
            "uuid": cell_uuid,
            "name": name,
            "database_connection": database_connection,
            "transport_url": transport_url,
            "disabled": disabled,
            "created_at": now,
            "updated_at": None,
        }
        try:
            with api_engine().begin() as conn:
                result = conn.execute(sa.insert(cell_mappings).values(values))
        except sa.exc.IntegrityError:
            raise exception.CellMappingExists(uuid=cell_uuid) from None
        values["id"] = result.inserted_primary_key[0]
        events.mapping_changed("cell", (cell_uuid,))
        return cls.from_row(values)

    def update(
        self,
        ctx: object,
        *,
        name: str | None = _UNSET,
        database_connection: str = _UNSET,
        transport_url: str = _UNSET,
        disabled: bool = _UNSET,
    ) -> CellMapping:
        """Change the given fields only; everything not given keeps its value."""
        changes: dict[str, Any] = {
            key: value
            for key, value in (
                ("name", name),
                ("database_connection", database_connection),
                ("transport_url", transport_url),
                ("disabled", disabled),
            )
            if value is not _UNSET
        }
        _validate(
            changes.get("name"),
            changes.get("database_connection", _UNSET),
            changes.get("transport_url", _UNSET),
        )
        if not changes:
            return self
        changes["updated_at"] = utcnow()
        with api_engine().begin() as conn:
            result = conn.execute(
                sa.update(cell_mappings).where(cell_mappings.c.uuid == self.uuid).values(changes)
            )
            if result.rowcount == 0:
                raise exception.CellMappingNotFound(uuid=self.uuid)
            row = conn.execute(
                sa.select(cell_mappings).where(cell_mappings.c.uuid == self.uuid)
            ).one()
        events.mapping_changed("cell", (self.uuid,))
        return type(self).from_row(row)

    def destroy(self, ctx: object) -> None:
        """Unmap the cell. Its host and instance mappings must be gone first."""
        try:
            with api_engine().begin() as conn:
                result = conn.execute(
                    sa.delete(cell_mappings).where(cell_mappings.c.uuid == self.uuid)
                )
        except sa.exc.IntegrityError:
            with api_engine().connect() as conn:
                hosts = conn.execute(
                    sa.select(host_mappings.c.id).where(host_mappings.c.cell_id == self.id).limit(1)
                ).first()
            if hosts is not None:
                raise exception.CellHasHosts(uuid=self.uuid) from None
            raise exception.CellHasInstances(uuid=self.uuid) from None
        if result.rowcount == 0:
            raise exception.CellMappingNotFound(uuid=self.uuid)
        events.mapping_changed("cell", (self.uuid,))
