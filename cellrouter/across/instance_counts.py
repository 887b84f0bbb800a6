"""How many instances each cell holds, in all and on one page, from the API database's
instance mappings.

A cross-cell instance list apportions its page by these counts and skips the
cells that hold none of the requested instances (an empty cell0, the cells
where a project has no instances). Counts are kept per project (or for all
projects) for :data:`COUNTS_TTL` seconds: they only size the batches, so a
stale count costs at most one more query. Whether a cell holds *any* matching
instance is never taken from the cache: a cell counted as empty in cached
counts is checked on every page with one indexed ``EXISTS`` query, so an
instance is listed the moment it is mapped.

A page in creation order is apportioned better still: the mappings are in
that order too (a mapping is created with its instance), so one query on a
covering index counts each cell's rows among the page's first ``limit``
mappings (:meth:`InstanceCounts.page_shares`), and each cell can be asked for
just that many rows. Like the counts, these shares only size batches: a
mapping whose time disagrees with its instance's costs a cell one more batch,
never a row.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cellrouter import exception
from cellrouter.db.api_schema import cell_mappings, instance_mappings
from cellrouter.db.database import api_engine
from cellrouter.index.cell_mapping import CellMapping

__all__ = ["COUNTS_TTL", "InstanceCounts", "instance_counts"]

LOG = logging.getLogger(__name__)

#: Seconds a cell's instance counts are reused for sizing batches.
COUNTS_TTL = 30.0
#: Project scopes whose counts are kept (least recently used dropped).
_MAX_SCOPES = 1024

#: the project filter counts are for: None (all projects) or sorted project ids
Scope = tuple[str, ...] | None
#: cell id -> (live instances, instances queued for deletion)
_Counts = dict[int, tuple[int, int]]

_im = instance_mappings


def _project_condition(scope: Scope) -> list[sa.ColumnElement[bool]]:
    if scope is None:
        return []
    return [_im.c.project_id.in_(scope)] if len(scope) > 1 else [_im.c.project_id == scope[0]]


def _count(scope: Scope) -> _Counts:
    stmt = (
        sa.select(_im.c.cell_id, _im.c.queued_for_delete, sa.func.count())
        .where(_im.c.cell_id.is_not(None), *_project_condition(scope))
        .group_by(_im.c.cell_id, _im.c.queued_for_delete)
    )
    counts: dict[int, list[int]] = {}
    with api_engine().connect() as conn:
        for cell_id, queued, number in conn.execute(stmt):
            counts.setdefault(cell_id, [0, 0])[1 if queued else 0] += int(number)
    return {cell_id: (live, queued) for cell_id, (live, queued) in counts.items()}


def _holding_statement(projects: int) -> sa.Select[Any]:
    """Which of the cells ``ids`` hold a mapped instance of any project (``projects``
    0), of ``project`` (1) or of any of ``projects`` (2: several): built once each."""
    key = ("holding", projects)
    statement = _STATEMENTS.get(key)
    if statement is None:
        project = _im.c.project_id
        conditions = [_im.c.cell_id == cell_mappings.c.id]
        if projects == 1:
            conditions.append(project == sa.bindparam("project", type_=sa.String()))
        elif projects:
            conditions.append(project.in_(sa.bindparam("projects", expanding=True)))
        held = sa.select(sa.literal(1)).where(*conditions).exists()
        ids = sa.bindparam("ids", type_=sa.Integer(), expanding=True)
        statement = sa.select(cell_mappings.c.id).where(cell_mappings.c.id.in_(ids), held)
        _STATEMENTS[key] = statement
    return statement


def _holding(cell_ids: Sequence[int], scope: Scope) -> set[int]:
    """Which of ``cell_ids`` hold at least one mapped instance in ``scope`` (one query)."""
    params: dict[str, Any] = {"ids": list(cell_ids)}
    if scope is not None and len(scope) == 1:
        params["project"] = scope[0]
    elif scope is not None:
        params["projects"] = list(scope)
    statement = _holding_statement(0 if scope is None else min(len(scope), 2))
    with api_engine().connect() as conn:
        return {cell_id for (cell_id,) in conn.execute(statement, params)}


def _shares_statement(project: bool, some: bool, descending: bool, after: bool) -> sa.Select[Any]:
    """cell id -> rows among the first ``limit`` live (or queued-for-delete, by
    ``queued``) mappings in creation order (of ``project``, of ``some`` cells
    ``ids`` only, past ``after``): one range of the covering index
    ``ix_instance_mappings_[project_]page_order``."""
    key = ("shares", project, some, descending, after)
    statement = _STATEMENTS.get(key)
    if statement is None:
        created = _im.c.created_at
        first = sa.select(_im.c.cell_id).where(
            _im.c.queued_for_delete == sa.bindparam("queued", type_=sa.Boolean()),
            created.is_not(None),  # where NULLs sort differs between databases
            _im.c.cell_id.is_not(None),
        )
        if project:
            first = first.where(_im.c.project_id == sa.bindparam("project"))
        if some:
            ids = sa.bindparam("ids", type_=sa.Integer(), expanding=True)
            first = first.where(_im.c.cell_id.in_(ids))
        if after:
            bound = sa.bindparam("after", type_=created.type)
            first = first.where(created < bound if descending else created > bound)
        first = first.order_by(created.desc() if descending else created.asc())
        top = first.limit(sa.bindparam("limit", type_=sa.Integer())).subquery("page")
        statement = sa.select(top.c.cell_id, sa.func.count()).group_by(top.c.cell_id)
        _STATEMENTS[key] = statement
    return statement


#: the statements above, by shape (built on first use; a race builds one twice)
_STATEMENTS: dict[tuple[Any, ...], sa.Select[Any]] = {}


def scope_of(project_filter: Any) -> Scope | bool:
    """The count scope of a ``project_id`` filter value; False when counts cannot say."""
    if project_filter is None:
        return None
    if isinstance(project_filter, str):
        return (project_filter,)
    if isinstance(project_filter, list | tuple | set | frozenset) and all(
        isinstance(value, str) for value in project_filter
    ):
        return tuple(sorted(set(project_filter))) or False
    return False


class InstanceCounts:
    """Per-cell instance counts, cached per project scope for ``ttl`` seconds."""

    def __init__(self, ttl: float = COUNTS_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: OrderedDict[Scope, tuple[float, _Counts]] = OrderedDict()

    def reset(self) -> None:
        with self._lock:
            self._cached.clear()

    def _counts(self, scope: Scope, fresh: bool) -> tuple[_Counts, bool]:
        """(the counts, whether they were just read rather than taken from the cache)."""
        now = time.monotonic()
        if not fresh:
            with self._lock:
                found = self._cached.get(scope)
                if found is not None and found[0] > now:
                    self._cached.move_to_end(scope)
                    return found[1], False
        counts = _count(scope)
        with self._lock:
            self._cached[scope] = (now + self.ttl, counts)
            self._cached.move_to_end(scope)
            while len(self._cached) > _MAX_SCOPES:
                self._cached.popitem(last=False)
        return counts, True

    def estimates(
        self, cells: Iterable[CellMapping], project_filter: Any, deleted: bool | None
    ) -> Mapping[str, int] | None:
        """cell uuid -> about how many matching instances it holds, for the cells that
        hold any; a cell left out holds none. None: the API database cannot say
        (unreachable, not configured here, or a project filter it cannot count).

        ``deleted``: count live instances (False), deleted ones (True) or both (None).
        """
        scope = scope_of(project_filter)
        if scope is False:
            return None
        assert scope is not True
        cells = list(cells)
        try:
            counts, just_read = self._counts(scope, fresh=False)
            empty = [cell.id for cell in cells if sum(counts.get(cell.id, (0, 0))) == 0]
            if empty and not just_read:  # counts just read need no second look
                found = _holding(empty, scope)
                if found:  # mapped since counted: count again
                    counts, _ = self._counts(scope, fresh=True)
                    for cell_id in found:
                        counts.setdefault(cell_id, (1, 1))
        except (exception.Unavailable, exception.UpcallForbidden) as exc:
            LOG.debug("No instance counts for list batching: %s", exc)
            return None
        result: dict[str, int] = {}
        for cell in cells:
            live, queued = counts.get(cell.id, (0, 0))
            if live + queued == 0:
                continue
            number = live if deleted is False else queued if deleted else live + queued
            result[cell.uuid] = max(number, 1)
        return result

    def page_shares(
        self,
        held: Mapping[str, int],
        cells: Iterable[CellMapping],
        project: str | None,
        deleted: bool,
        limit: int,
        descending: bool,
        after: datetime.datetime | None = None,
    ) -> Mapping[str, int] | None:
        """cell uuid -> how many of a page's ``limit`` instances the cell holds, the
        page being in creation order (``descending``: newest first), of ``project``
        (None: all projects), deleted or live, created after ``after`` (before it,
        if ``descending``; None: from the first), as the mappings tell, for the
        cells ``held`` (what :meth:`estimates` said of them): those holding none of
        the page map to 0.
        None: the API database cannot say, or the page's mappings with a creation
        time are fewer than its instances are likely to be (times missing, or the
        page is the last).
        """
        cells = list(cells)
        if not held:
            return held
        params: dict[str, Any] = {"queued": deleted, "limit": limit}
        if project is not None:
            params["project"] = project
        if after is not None:
            params["after"] = after
        ids = {cell.id for cell in cells if cell.uuid in held}
        try:
            counts, _ = self._counts(None if project is None else (project,), fresh=False)
            some = any(cell_id not in ids for cell_id, pair in counts.items() if sum(pair))
            if some:  # a page of some cells only: count their mappings alone
                params["ids"] = sorted(ids)
            statement = _shares_statement(project is not None, some, descending, after is not None)
            with api_engine().connect() as conn:
                on_page: dict[int, int] = dict(conn.execute(statement, params).all())
        except (exception.Unavailable, exception.UpcallForbidden) as exc:
            LOG.debug("No page shares for list batching: %s", exc)
            return None
        if sum(on_page.values()) < min(limit, sum(held.values())):
            return None  # mappings without a time, or the page's last rows: cannot say
        return {cell.uuid: on_page.get(cell.id, 0) for cell in cells if cell.uuid in held}


_COUNTS = InstanceCounts()


def instance_counts() -> InstanceCounts:
    """The process's instance counts."""
    return _COUNTS
