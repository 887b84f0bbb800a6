"""The instance list across cells: Nova's ``GET /servers`` order, markers and down-cell records.

:class:`InstanceLister` specialises the generic
:class:`~cellrouter.across.lister.CrossCellLister` for the cells' ``instances``
table: a marker is resolved in its own cell, found through its instance
mapping, and the instances of cells that failed can be stood in for by
minimal records built from the API database's instance mappings (status
``UNKNOWN``), merged in sort order like any other cell's rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cellrouter import exception
from cellrouter.across.instance_counts import instance_counts
from cellrouter.across.lister import (
    CrossCellLister,
    Filters,
    ListResult,
    PageRequest,
    column_condition,
)
from cellrouter.across.merge import SortValues
from cellrouter.across.sorting import SortSpec, after_marker, order_by
from cellrouter.cells.context import RequestContext
from cellrouter.conf import get_conf
from cellrouter.db.api_schema import instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.db.database import api_engine
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping

__all__ = ["UNKNOWN_STATUS", "InstanceLister", "list_instances"]

#: ``status`` of the minimal records standing in for the instances of a down cell.
UNKNOWN_STATUS = "UNKNOWN"

#: instance columns the API database knows, from the instance mapping
_MAPPING_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "uuid": instance_mappings.c.instance_uuid,
    "project_id": instance_mappings.c.project_id,
    "user_id": instance_mappings.c.user_id,
    "created_at": instance_mappings.c.created_at,
}


class InstanceLister(CrossCellLister):
    """The instance list: markers resolved through the instance mapping, down-cell records."""

    table = instances
    fixed_keys = frozenset({"created_at", "id", "uuid"})

    def marker_values(self, ctx: RequestContext, marker: str, request: PageRequest) -> SortValues:
        """Read the marker instance in its own cell (found via its mapping).

        If that cell is down and down-cell records were asked for, the marker
        is a down-cell record: its values come from the mapping, as on the
        page that returned it.
        """
        try:
            mapping = InstanceMapping.get_by_instance_uuid(ctx, marker)
        except exception.InstanceMappingNotFound:
            raise exception.InvalidMarker(marker=marker) from None
        cell = mapping.cell_mapping
        if cell is None:
            raise exception.InvalidMarker(marker=marker)
        try:
            return super().marker_values(ctx, marker, dataclasses.replace(request, cells=(cell,)))
        except exception.CellUnavailable:
            if not request.down_cell_records:
                raise
        spec = request.spec
        record = _mapping_record(
            spec, marker, mapping.project_id, mapping.user_id, mapping.created_at
        )
        return tuple(record[key] for key in spec.keys)

    def cell_estimates(self, ctx: RequestContext, request: PageRequest) -> Mapping[str, int] | None:
        """The cells' instance counts from the instance mappings (see
        :mod:`cellrouter.across.instance_counts`), for the filtered project if any."""
        if not get_conf().cells.list_cells_by_mappings:
            return None
        deleted = _deleted(ctx, request.filters)
        return instance_counts().estimates(
            request.cells, request.filters.get("project_id"), deleted
        )

    def page_shares(
        self, ctx: RequestContext, request: PageRequest, estimates: Mapping[str, int]
    ) -> Mapping[str, int] | None:
        """Each cell's instances among the page's, from the mappings in creation order,
        when the page is in that order (``created_at`` first) and filtered by nothing
        a mapping does not tell (one project at most, live or deleted instances)."""
        spec, filters, after = request.spec, request.filters, request.after
        deleted = _deleted(ctx, filters)
        project = filters.get("project_id")
        if (
            not get_conf().cells.list_cells_by_mappings
            or request.limit is None
            or spec.keys[0] != "created_at"
            or deleted is None
            or not set(filters) <= {"project_id", "deleted"}
            or not (project is None or isinstance(project, str))
            or (after is not None and after[0] is None)
        ):
            return None
        return instance_counts().page_shares(
            estimates,
            request.cells,
            project,
            deleted,
            request.limit,
            spec.descending[0],
            None if after is None else after[0],
        )

    def down_cell_records(self, ctx: RequestContext, request: PageRequest) -> list[dict[str, Any]]:
        """Minimal records from the instance mappings of ``request.cells``, in sort order.

        Only ``project_id`` and ``user_id`` filters can be applied (the API
        database knows nothing else about an instance); deleted-ness follows
        the mapping's ``queued_for_delete``. Sort keys a mapping does not have
        are None.
        """
        im, spec, filters = instance_mappings, request.spec, request.filters
        exprs = [_MAPPING_COLUMNS.get(key) for key in spec.keys]
        conditions: list[Any] = [im.c.cell_id.in_([cell.id for cell in request.cells])]
        for name in ("project_id", "user_id"):
            if name in filters:
                conditions.append(column_condition(im.c[name], filters[name]))
        if "deleted" in filters:
            conditions.append(im.c.queued_for_delete == bool(filters["deleted"]))
        elif ctx.read_deleted != "yes":
            conditions.append(im.c.queued_for_delete == (ctx.read_deleted == "only"))
        with api_engine().connect() as conn:
            dialect = conn.dialect
            stmt = sa.select(im.c.instance_uuid, im.c.project_id, im.c.user_id, im.c.created_at)
            stmt = stmt.where(*conditions)
            if request.after is not None:
                stmt = stmt.where(after_marker(spec, exprs, request.after, dialect))
            stmt = stmt.order_by(*order_by(spec, exprs, dialect))
            if request.limit is not None:
                stmt = stmt.limit(request.limit)
            rows = conn.execute(stmt).all()
        return [_mapping_record(spec, *row) for row in rows]


def _deleted(ctx: RequestContext, filters: Filters) -> bool | None:
    """Whether a page lists deleted instances (True), live ones (False) or both (None)."""
    if "deleted" in filters:
        return bool(filters["deleted"])
    return {"no": False, "only": True}.get(ctx.read_deleted)


def _mapping_record(
    spec: SortSpec,
    instance_uuid: str,
    project_id: str,
    user_id: str | None,
    created_at: Any,
) -> dict[str, Any]:
    """A down-cell record: what the mapping knows, None for every other sort key."""
    record: dict[str, Any] = dict.fromkeys(spec.keys)
    record.update(
        uuid=instance_uuid,
        project_id=project_id,
        user_id=user_id,
        created_at=created_at,
        status=UNKNOWN_STATUS,
    )
    return record


_INSTANCES = InstanceLister()


def list_instances(
    ctx: RequestContext,
    *,
    sort_keys: Sequence[str] | None = None,
    sort_dirs: Sequence[str] | None = None,
    limit: int | None = None,
    marker: str | None = None,
    filters: Filters | None = None,
    cells: Iterable[CellMapping] | None = None,
    project_only: bool = False,
    by_project: bool | None = None,
    down_cell_records: bool = False,
    columns: Sequence[str] | None = None,
    timeout: float | None = None,
    as_dicts: bool = True,
) -> ListResult:
    """A page of instances across cells, sorted ``created_at desc`` by default (like Nova).

    ``filters``: exact values (or lists of values) of instance columns, e.g.
    project_id, user_id, host, vm_state, display_name; ``deleted`` (bool)
    overrides ``ctx.read_deleted``. ``project_only`` restricts the list to
    ``ctx.project_id``. ``by_project`` (default
    ``[cells]/instance_list_per_project_cells``) queries only the cells where
    the filtered project has instances. ``down_cell_records`` merges minimal
    records (status ``UNKNOWN``) for the instances of cells that failed.
    ``as_dicts=False`` returns SQLAlchemy ``Row``s instead of dicts (no per-row work).
    """
    filters = dict(filters or {})
    if project_only:
        if ctx.project_id is None:
            raise exception.InvalidValue(
                what="project_only", reason="the context has no project_id"
            )
        filters["project_id"] = ctx.project_id
    if cells is None:
        if by_project is None:
            by_project = get_conf().cells.instance_list_per_project_cells
        project_id = filters.get("project_id")
        if by_project and isinstance(project_id, str):
            cells = CellMapping.get_by_project(ctx, project_id)
    return _INSTANCES.page(
        ctx,
        sort_keys=sort_keys,
        sort_dirs=sort_dirs,
        limit=limit,
        marker=marker,
        filters=filters,
        cells=cells,
        columns=columns,
        down_cell_records=down_cell_records,
        timeout=timeout,
        as_dicts=as_dicts,
    )
