"""How a cross-cell list reads SQLite cells: in turns, and from reads kept open for the page.

A SQLite cell's rows are parsed in this process, holding the GIL (sqlite3
drops it only around each row step), so:

* Reads take turns (:data:`TURNS`): several at once would hand the GIL back
  and forth for no parallelism. A turn is waited for only until it has been
  held :data:`TURN_WAIT` seconds: a read stuck on its file costs each other
  read that wait at most, and reads that come later none.
* A page keeps each SQLite cell's read open (:class:`PageReads`): the cell's
  statement runs once, with the page's limit, and each batch the merge asks
  for is the next rows of that read. A short batch is refilled by stepping on,
  not by a second query, and rows the page does not need are never parsed.
  Open reads hold a pooled connection each until the page ends, so the
  process keeps at most half of ``[cells]/max_cell_connections`` of them
  (:func:`reserve`); a page that cannot have them reads each batch with its
  own query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Row

from cellrouter import forksafe
from cellrouter.conf import get_conf

__all__ = [
    "TURNS",
    "TURN_WAIT",
    "OpenRead",
    "PageReads",
    "Turns",
    "release",
    "renew_after_fork",
    "reserve",
]

#: seconds a SQLite read waits for its turn before reading anyway
TURN_WAIT: Final = 0.1


class Turns:
    """Reads that take turns (``with turns:``), each waiting for its turn briefly only."""

    __slots__ = ("lock", "since", "turn")

    def __init__(self) -> None:
        self.lock = forksafe.Lock()
        self.since = 0.0  # when the current turn began
        self.turn = threading.local()

    def __enter__(self) -> None:
        lock = self.lock
        held = lock.acquire(blocking=False)
        if not held:
            wait = self.since + TURN_WAIT - time.monotonic()
            held = wait > 0 and lock.acquire(timeout=wait)
        if held:
            self.since = time.monotonic()
        self.turn.held = held

    def __exit__(self, *exc_info: object) -> None:
        if self.turn.held:
            self.lock.release()


#: the process's SQLite reads take these turns
TURNS = Turns()

_IDLE, _BUSY, _ABANDONED, _CLOSED = range(4)


class OpenRead:
    """One cell's read kept open: its next rows, a batch at a time.

    Closed when it runs out, fails, or its page ends. A page that ends while
    a worker is still stepping the read (stuck on its file) leaves the close
    to that worker, when it returns.
    """

    __slots__ = ("conn", "lock", "result", "state")

    def __init__(self, conn: Connection, result: CursorResult[Any]) -> None:
        self.conn = conn
        self.result = result
        self.lock = threading.Lock()
        self.state = _IDLE

    def take(self, size: int | None) -> list[Row[Any]]:
        """The next ``size`` rows (None: all the rest); fewer: the read ran out, and is closed."""
        with self.lock:
            if self.state != _IDLE:
                raise sa.exc.InvalidRequestError("this cell's read was closed with its page")
            self.state = _BUSY
        done = True
        try:
            with TURNS:
                rows = list(self.result.all() if size is None else self.result.fetchmany(size))
            done = size is None or len(rows) < size
            return rows
        finally:
            with self.lock:
                if self.state == _ABANDONED:
                    done = True
                self.state = _IDLE
            if done:
                self.close()

    def take_until(self, past: Callable[[Any], bool], chunk: int) -> tuple[list[Row[Any]], bool]:
        """(the next rows up to the first for which ``past`` is true, read ``chunk``
        at a time, so up to ``chunk - 1`` more; whether the read may hold more)."""
        taken: list[Row[Any]] = []
        while True:
            rows = self.take(chunk)
            taken += rows
            if len(rows) < chunk:
                return taken, False
            if past(rows[-1]):
                return taken, True

    def close(self) -> None:
        """Close it now, or (while a worker steps it) as soon as that worker is done."""
        with self.lock:
            if self.state == _BUSY:
                self.state = _ABANDONED
                return
            if self.state in (_ABANDONED, _CLOSED):
                return
            self.state = _CLOSED
        try:
            self.result.close()
        finally:
            self.conn.close()


class PageReads:
    """The open reads of one page's SQLite cells, by cell uuid, closed with the page."""

    __slots__ = ("closed", "limit", "lock", "reads")

    def __init__(self, limit: int | None) -> None:
        #: each read's statement limit: the page's (a cell cannot give it more)
        self.limit = limit
        self.reads: dict[str, OpenRead] = {}
        self.lock = threading.Lock()
        self.closed = False

    def get(self, cell_uuid: str) -> OpenRead | None:
        return self.reads.get(cell_uuid)

    def add(self, cell_uuid: str, read: OpenRead) -> None:
        """Keep ``read`` for the page's next batches (closed at once if the page ended)."""
        with self.lock:
            if not self.closed:
                self.reads[cell_uuid] = read
                return
        read.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            reads, self.reads = list(self.reads.values()), {}
        for read in reads:
            read.close()


_budget_lock = forksafe.Lock()
_open_reads = 0


def reserve(count: int) -> bool:
    """Reserve ``count`` open reads for a page; False when the process has too many."""
    global _open_reads
    limit = int(get_conf().cells.max_cell_connections) // 2
    with _budget_lock:
        if _open_reads + count > limit:
            return False
        _open_reads += count
        return True


def release(count: int) -> None:
    """Give back what :func:`reserve` reserved."""
    global _open_reads
    with _budget_lock:
        _open_reads = max(0, _open_reads - count)


def renew_after_fork() -> None:
    """In a forked child: no open reads (the parent's pages are not the child's)."""
    global _open_reads
    _open_reads = 0
