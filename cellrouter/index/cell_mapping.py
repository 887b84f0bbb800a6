"""Cell mappings: cell uuid -> (database URL, transport URL), in the API database.

Records are small immutable values. URLs are stored as given (possibly
templates, see :mod:`cellrouter.url`) and formatted once, when a record is
read. Reading and writing is :mod:`cellrouter.index.store`'s: the Nova-style
classmethods here (``get_by_uuid``, ``create``, ``update``, ``destroy`` ...)
are one-line calls into it, kept for every caller that knows them.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import operator
import typing
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from cellrouter import exception
from cellrouter.conf import get_conf
from cellrouter.db.api_schema import cell_mappings
from cellrouter.db.engine import parse_db_url
from cellrouter.index import mapping_index, mapping_store
from cellrouter.url import check_url, format_url, mask_url

__all__ = [
    "CELL0_UUID",
    "CELL_FIELDS",
    "JOINED_COLUMNS",
    "NO_TRANSPORT_URL",
    "CellMapping",
    "check_cell_values",
    "format_cell_url",
    "validate_transport_url",
]

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
    from cellrouter import messaging  # late: imports oslo.messaging

    messaging.check_transport_url(url)


#: the cell fields a write may set
CELL_FIELDS = frozenset({"name", "database_connection", "transport_url", "disabled"})
_NAME_LENGTH = typing.cast(sa.String, cell_mappings.c.name.type).length


def check_cell_values(values: Mapping[str, Any]) -> None:
    """Raise InvalidValue/InvalidURL for whichever of these cell fields is given and unusable.

    A URL is checked as given first (a template's structure, placeholders
    standing for valid parts), then as this process fills it in. Nothing connects.
    """
    unknown = sorted(set(values) - CELL_FIELDS)
    if unknown:
        raise exception.InvalidValue(what="cell field", reason=", ".join(unknown))
    name = values.get("name")
    if name is not None and _NAME_LENGTH is not None and len(name) > _NAME_LENGTH:
        raise exception.InvalidValue(
            what="cell name", reason=f"longer than {_NAME_LENGTH} characters"
        )
    if "database_connection" in values:
        url = values["database_connection"] or ""
        check_url(url, "database")
        parse_db_url(format_cell_url(url, "database"))
    if "transport_url" in values:
        url = values["transport_url"] or ""
        check_url(url, "transport")
        validate_transport_url(format_cell_url(url, "transport"))


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
    def get_by_uuid(cls, ctx: object, cell_uuid: str) -> CellMapping:
        return mapping_index().cell(cell_uuid)

    @classmethod
    def get_all(cls, ctx: object) -> list[CellMapping]:
        """Every cell, in creation order (cell0 first when it was mapped first)."""
        return list(mapping_index().cells())

    @classmethod
    def get_by_disabled(cls, ctx: object, disabled: bool) -> list[CellMapping]:
        return list(mapping_index().cells_by_disabled(disabled))

    @classmethod
    def get_by_project(cls, ctx: object, project_id: str) -> list[CellMapping]:
        """The cells where ``project_id`` has (mapped) instances."""
        return mapping_store().cells_of_project(project_id)

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

    # -- writing (see cellrouter.index.store) ----------------------------------

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
        return mapping_store().create_cell(
            database_connection=database_connection,
            transport_url=transport_url,
            name=name,
            uuid=uuid,
            disabled=disabled,
        )

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
        given = {
            "name": name,
            "database_connection": database_connection,
            "transport_url": transport_url,
            "disabled": disabled,
        }
        return mapping_store().update_cell(
            self, {key: value for key, value in given.items() if value is not _UNSET}
        )

    def destroy(self, ctx: object) -> None:
        """Unmap the cell. Its host and instance mappings must be gone first."""
        mapping_store().delete_cell(self)
