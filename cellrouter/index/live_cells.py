"""The live cell list: every cell, current in every process without a restart.

Every create, update and delete of a cell bumps ``cell_generation`` in the
same transaction (:mod:`cellrouter.index.store`). The list is trusted for
``[cells]/refresh_interval`` seconds; after that, the next use reads the
generation (one tiny query) and reads the cells again only when it moved. The
cells that a reload finds created, changed or deleted are announced on
:mod:`cellrouter.index.events` like a write of this process, so the registry
replaces (or releases) their connections and health forgets them; a disabled
cell leaves every choice made from the list at once.

A write in this process expires the list at once (:meth:`LiveCells.expire`).
Reads take no lock: the state is one tuple, replaced whole. While the API
database cannot be reached, the last list keeps being used (one warning).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from cellrouter import exception, forksafe
from cellrouter.conf import get_conf
from cellrouter.index import cache_stats, events
from cellrouter.index.api import MappingIndex
from cellrouter.index.cell_mapping import CellMapping

__all__ = ["LiveCells"]

LOG = logging.getLogger(__name__)


class _State(NamedTuple):
    #: the API database the cells were read from
    api_url: str | None
    #: the cell generation they were read at (-1: reload on next use)
    generation: int
    #: monotonic time after which the generation is checked again
    check_at: float
    cells: tuple[CellMapping, ...]
    by_uuid: dict[str, CellMapping]


def _changed(old: _State, new: _State) -> Iterator[str]:
    """The uuids of cells created, deleted or changed between two lists."""
    for uuid, cell in new.by_uuid.items():
        if old.by_uuid.get(uuid) != cell:
            yield uuid
    for uuid in old.by_uuid.keys() - new.by_uuid.keys():
        yield uuid


class LiveCells:
    """The cells of the API database, reloaded when their generation moves."""

    def __init__(self, source: Callable[[], MappingIndex]) -> None:
        self._source = source
        self._state: _State | None = None
        self._lock = forksafe.Lock()
        self._warned = False
        self._reload_hooks: tuple[Callable[[tuple[CellMapping, ...]], None], ...] = ()

    def add_reload_hook(self, hook: Callable[[tuple[CellMapping, ...]], None]) -> None:
        """Call ``hook(cells)`` after every read of the list, the first included,
        with the whole list (the registry releases the connections of every
        cell no longer in it, or held for URLs the cell no longer has)."""
        if hook not in self._reload_hooks:
            self._reload_hooks = (*self._reload_hooks, hook)

    def all(self) -> tuple[CellMapping, ...]:
        """Every cell (cell0 and disabled ones included), in creation order."""
        return self._current().cells

    def get(self, cell_uuid: str) -> CellMapping | None:
        """The cell ``cell_uuid`` as the list knows it (None: not in the list)."""
        return self._current().by_uuid.get(cell_uuid)

    def find(self, cell_uuid: str) -> CellMapping | None:
        """Like :meth:`get`, but a cell missing from the list makes it check the
        generation first: it may have been created a moment ago elsewhere."""
        cell = self.get(cell_uuid)
        if cell is None:
            self.expire()
            cell = self.get(cell_uuid)
        return cell

    # -- keeping current --------------------------------------------------------

    def _current(self) -> _State:
        state = self._state
        if state is not None and time.monotonic() < state.check_at:
            return state
        return self._refresh(state, force=False)

    def expire(self) -> None:
        """Check the generation on the next use (a write in this process moved it)."""
        state = self._state
        if state is not None:
            self._state = state._replace(check_at=0.0)

    def request_reload(self) -> None:
        """Read the cells again on the next use, whatever the generation says.

        Takes no lock and does no I/O: safe in a signal handler."""
        state = self._state
        if state is not None:
            self._state = state._replace(generation=-1, check_at=0.0)

    def reload(self) -> tuple[CellMapping, ...]:
        """Read the cells now; announce the ones that changed."""
        return self._refresh(self._state, force=True).cells

    def reset(self) -> None:
        """Forget the list (new configuration, tests): the next use reads it, announcing nothing."""
        with self._lock:
            self._state = None

    def _refresh(self, seen: _State | None, force: bool) -> _State:
        if seen is not None and not force:
            # A routine check: one thread does it, the others go on with the list they have.
            if not self._lock.acquire(blocking=False):
                return seen
            try:
                if self._state is not seen:
                    return self._state or seen  # refreshed by another thread meanwhile
                new, changed = self._read(seen, force)
                self._state = new
            finally:
                self._lock.release()
        else:
            # No list yet, or a forced reload: nothing to go on with, so each caller
            # reads (a database that fails then costs each one its own bound, in
            # parallel, never a queue of them).
            new, changed = self._read(seen, force)
            self._state = new
        if changed:
            events.mapping_changed("cell", changed)
        if seen is None or new.cells is not seen.cells:  # read again, not just checked
            for hook in self._reload_hooks:
                hook(new.cells)
        return new

    def _read(self, state: _State | None, force: bool) -> tuple[_State, list[str]]:
        conf = get_conf()
        api_url = conf.api_database.connection
        check_at = time.monotonic() + conf.cells.refresh_interval
        same_db = state is not None and state.api_url == api_url
        index = self._source()
        try:
            generation = index.generation()  # first: a write after it reads as a move
            if not force and state is not None and same_db and generation == state.generation:
                return state._replace(check_at=check_at), []
            cells = tuple(index.cells())
        except exception.Unavailable as error:
            if state is None or not same_db:
                raise
            if not self._warned:
                self._warned = True
                LOG.warning("cell list: keeping the last one read, %s", error)
            return state._replace(check_at=check_at), []
        if self._warned:
            self._warned = False
            LOG.info("cell list: the API database answers again")
        cache_stats.count("refreshes")
        new = _State(api_url, generation, check_at, cells, {cell.uuid: cell for cell in cells})
        changed = list(_changed(state, new)) if state is not None and same_db else []
        if changed:
            LOG.info("cell list reloaded: %d cell(s) created, changed or deleted", len(changed))
        return new, changed
