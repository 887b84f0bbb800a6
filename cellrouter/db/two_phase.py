"""Writes that span a cell's database and the API database, in the one safe order.

The two databases share no transaction, so a crash can fall between their
commits. The order decides what that leaves behind: **the cell database is
updated first, then the API database**, so a crash in between leaves nothing a
user cannot see or clean up.

:func:`cell_then_api` runs it: the API statements go first, inside the open
API transaction (a failure there changes nothing anywhere); then the cell's
:class:`CellStep` commits in the cell database; then the API transaction
commits. If the cell database fails, the API transaction rolls back: nothing
is half-written. The only remaining window is the API COMMIT itself failing
after the cell committed, and the callers pick steps for which that is the
safe state:

* unmapping hosts (``delete_host``, ``delete_cell --force``) unflags their
  compute nodes in the cell: a crash leaves nodes unflagged while their host
  mappings still exist, which the next ``discover_hosts`` simply flags again
  (the host is already mapped to this very cell). The opposite order could
  leave nodes flagged ``mapped`` whose host mappings are gone: discovery would
  never map them again.
* moving an instance to another cell copies its rows into the target cell:
  a crash leaves a copy that no mapping points to, and the instance where the
  user sees it.

A cell living in the API database itself (one SQLite file in development)
runs its step on the API connection, or it would wait on its own write lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import sqlalchemy as sa

from cellrouter.db import bulk

__all__ = ["CellStep", "cell_then_api"]


@dataclasses.dataclass(frozen=True, slots=True)
class CellStep:
    """Work to commit in a cell's database just before an API transaction commits."""

    #: how errors name the cell (``CellMapping.identity``: never its URL)
    cell: str
    #: the cell database's engine
    engine: sa.Engine
    #: the work, given a connection inside the cell's transaction
    run: Callable[[sa.Connection], object]


@contextlib.contextmanager
def cell_then_api(api: sa.Engine, step: CellStep) -> Iterator[sa.Connection]:
    """An API transaction whose body's writes commit only after ``step`` committed in its cell.

    The body runs its API statements on the yielded connection. A cell database
    error rolls the API transaction back and raises CellUnavailable (masked).
    """
    with api.begin() as api_conn:
        yield api_conn
        if step.engine.url == api_conn.engine.url:
            step.run(api_conn)
        else:
            try:
                with step.engine.begin() as cell_conn:
                    step.run(cell_conn)
            except sa.exc.DBAPIError as exc:
                raise bulk.cell_unavailable(step.cell, exc) from None
