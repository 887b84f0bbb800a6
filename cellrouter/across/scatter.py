"""Scatter-gather: run one function in many cells at once, collect what came back in time.

:func:`scatter_gather_cells` runs ``fn(cctx, *args, **kwargs)`` in every cell
in parallel, ``cctx`` being the caller's context targeted at the cell, and
returns ``{cell_uuid: result}``. A cell that did not finish within the timeout
maps to :data:`did_not_respond_sentinel`, a cell whose fn raised maps to the
exception; :func:`is_cell_failure` tells both from a result.

Jobs run on :mod:`cellrouter.workers`, at most ``[cells]/max_worker_threads``
at once whatever the number of cells: the others wait in line. The caller
waits at most ``timeout`` in total; a cell whose job had not started by then
(the pool was busy) is reported as not responding but not marked down, and
its job is dropped when its turn comes.

:func:`scatter_gather_reads` is the same for database reads: cells whose
database lives in this process (SQLite files) gain nothing from threads, as
their reads hold the GIL, so they are read one after another by one worker,
one thread hand-off for all of them. When that worker makes no progress for
:data:`STALL_SECONDS` (a read stuck on its file), another worker takes over
the cells still waiting, so a stuck cell costs the others that much at most.

Cells that :mod:`cellrouter.across.health` knows to be down are answered with the
sentinel at once. A timeout marks a cell down only when it is the configured
``[cells]/scatter_timeout`` (a caller's shorter deadline says nothing about the
cell); connection errors mark it down through the cell's engine. Every
failure is logged once per cell, naming the cell by its identity only.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from cellrouter import exception, workers
from cellrouter.across import health
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.conf import get_conf
from cellrouter.db import dberror
from cellrouter.index import mapping_index
from cellrouter.index.cell_mapping import CellMapping

__all__ = [
    "Sentinel",
    "did_not_respond_sentinel",
    "is_cell_failure",
    "reads_in_process",
    "scatter_gather_all_cells",
    "scatter_gather_cells",
    "scatter_gather_reads",
    "scatter_gather_single_cell",
    "scatter_gather_skip_cell0",
    "check_timeout",
]

LOG = logging.getLogger(__name__)

T = TypeVar("T")


class Sentinel:
    """The type of :data:`did_not_respond_sentinel`: a named singleton result
    (pickles and copies as itself)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name

    def __copy__(self) -> Sentinel:
        return self

    def __deepcopy__(self, memo: object) -> Sentinel:
        return self


#: The result of a cell that did not answer within the timeout (or is known to be down).
did_not_respond_sentinel: Final = Sentinel("did_not_respond_sentinel")


def is_cell_failure(value: object) -> bool:
    """True when a scatter result is the did-not-respond sentinel or an exception."""
    return value is did_not_respond_sentinel or isinstance(value, BaseException)


# -- scatter-gather ----------------------------------------------------------------


#: seconds without progress after which another worker joins cells read in turn
#: (at most a quarter of the caller's timeout)
STALL_SECONDS: Final = 0.1


def reads_in_process(cell: CellMapping) -> bool:
    """True when the cell's database is read by this process itself (SQLite)."""
    return cell.database_connection.startswith("sqlite")


class _InTurn:
    """Cells read one after another: each worker that joins takes the next waiting cell."""

    __slots__ = ("done", "pending", "run", "workers")

    def __init__(self, run: Callable[[CellMapping], None], cells: list[CellMapping]) -> None:
        self.run = run
        self.pending = collections.deque(cells)
        #: cells finished, and workers that joined (read by the waiting caller)
        self.done = 0
        self.workers = 0

    def work(self) -> None:
        self.workers += 1
        pending, run = self.pending, self.run
        while True:
            try:
                cell = pending.popleft()  # atomic: workers never take the same cell
            except IndexError:
                return
            run(cell)
            self.done += 1


class _Gather:
    """The results of one scatter; workers report into it until the caller closes it."""

    __slots__ = (
        "args",
        "ctx",
        "done",
        "fn",
        "kwargs",
        "lock",
        "open",
        "remaining",
        "results",
        "started",
    )

    def __init__(
        self,
        ctx: RequestContext,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        count: int,
    ) -> None:
        self.ctx = ctx
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.results: dict[str, tuple[Any, float]] = {}
        #: the cells whose job started (read after the gather closed)
        self.started: set[str] = set()
        self.remaining = count
        self.open = True
        self.lock = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()

    def run(self, cell: CellMapping) -> None:
        with self.lock:
            if not self.open:
                return  # queued behind busy workers until its caller gave up: skip it
            self.started.add(cell.uuid)
        start = time.perf_counter()
        try:
            with target_cell(self.ctx, cell) as cctx:
                value = self.fn(cctx, *self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - the caller gets the exception
            value = exc
        elapsed = time.perf_counter() - start
        with self.lock:
            if not self.open:
                return  # a straggler: its caller gave up on it
            self.results[cell.uuid] = (value, elapsed)
            self.remaining -= 1
            if self.remaining == 0:
                self.done.release()

    def wait(self, timeout: float, in_turn: _InTurn | None) -> dict[str, tuple[Any, float]]:
        """The results that arrived within ``timeout`` seconds; later ones are dropped.

        While cells read ``in_turn`` still wait and their worker made no progress
        for a stall interval, another worker is sent to take them over.
        """
        timeout = max(timeout, 0.0)
        if in_turn is None or not in_turn.pending:
            self.done.acquire(timeout=timeout)
        else:
            stall = min(STALL_SECONDS, timeout / 4) or timeout
            deadline = time.monotonic() + timeout
            seen = 0
            while not self.done.acquire(timeout=min(stall, max(deadline - time.monotonic(), 0))):
                if time.monotonic() >= deadline:
                    break
                if in_turn.pending and in_turn.done == seen:
                    workers.submit(in_turn.work)
                seen = in_turn.done
        with self.lock:
            self.open = False
        return self.results


def _gather(
    ctx: RequestContext,
    cells: Iterable[CellMapping],
    timeout: float,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    reads: bool = False,
) -> dict[str, T | BaseException | Sentinel]:
    by_uuid = {cell.uuid: cell for cell in cells}
    down = health.down_cells()
    to_run = (
        [cell for uuid, cell in by_uuid.items() if uuid not in down] if down else by_uuid.values()
    )
    if not to_run:
        return dict.fromkeys(by_uuid, did_not_respond_sentinel)
    gather = _Gather(ctx, fn, args, kwargs, len(to_run))
    run = gather.run
    in_turn = None
    if reads:
        local: list[CellMapping] = []
        remote: list[CellMapping] = []
        for cell in to_run:
            (local if reads_in_process(cell) else remote).append(cell)
        if len(local) > 1:
            in_turn, to_run = _InTurn(run, local), remote
    jobs: list[workers.Job] = [functools.partial(run, cell) for cell in to_run]
    if in_turn is not None:
        jobs.append(in_turn.work)
    workers.submit_all(jobs)
    collected = gather.wait(timeout, in_turn)

    results: dict[str, Any] = {}
    for cell_uuid, cell in by_uuid.items():
        outcome = collected.get(cell_uuid)
        if outcome is None:
            results[cell_uuid] = did_not_respond_sentinel
            if cell_uuid in down:
                LOG.debug("Cell %s is marked down: skipped", cell.identity)
            elif cell_uuid not in gather.started and in_turn is not None and in_turn.workers:
                # Waiting for its turn behind slower cells: nothing is known about it.
                LOG.warning(
                    "Cell %s was not read within %.3gs: the cells read before it took the time",
                    cell.identity,
                    timeout,
                )
            elif cell_uuid not in gather.started:
                # Queued behind busy workers: nothing is known about the cell.
                LOG.warning(
                    "Cell %s was not queried within %.3gs: all %d worker threads were busy",
                    cell.identity,
                    timeout,
                    get_conf().cells.max_worker_threads,
                )
            else:
                _report_timeout(cell, timeout)
            continue
        value, elapsed = outcome
        results[cell_uuid] = value
        if isinstance(value, BaseException):
            _report_error(cell, value, elapsed)
        else:
            health.record_success(cell, elapsed)
    return results


def _report_timeout(cell: CellMapping, timeout: float) -> None:
    if timeout < _default_timeout():
        # The caller's own deadline, shorter than the configured one: it says
        # nothing about the cell, so other callers keep using it.
        LOG.info("Cell %s did not respond within the caller's %.3gs", cell.identity, timeout)
        return
    interval = health.record_failure(cell, None)
    suffix = f"; treating it as down for {interval:g}s" if interval else ""
    LOG.warning("Cell %s did not respond within %.3gs%s", cell.identity, timeout, suffix)


def _report_error(cell: CellMapping, exc: BaseException, elapsed: float) -> None:
    described = dberror.describe(exc)
    if dberror.is_connection_error(exc):
        # CellUnavailable comes from the cell's engine, which already told health.
        recorded = isinstance(exc, exception.CellUnavailable)
        interval = None if recorded else health.record_failure(cell, exc)
        suffix = f"; treating it as down for {interval:g}s" if interval else ""
        LOG.warning("Cell %s is unreachable: %s%s", cell.identity, described, suffix)
        return
    health.record_success(cell, elapsed)  # it answered, with an error of fn's own
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    LOG.warning("Cell %s raised %s%s", cell.identity, described, where)


def check_timeout(timeout: object, what: str = "timeout") -> float:
    """``timeout`` as seconds, or InvalidValue unless it is a real number >= 0."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise exception.InvalidValue(what=what, reason=f"a number of seconds, not {timeout!r}")
    if not timeout >= 0 or timeout == float("inf"):  # NaN fails >= too
        raise exception.InvalidValue(what=what, reason=f"must be >= 0 and finite, not {timeout!r}")
    return float(timeout)


def _default_timeout() -> float:
    return float(get_conf().cells.scatter_timeout)


def scatter_gather_cells(
    context: RequestContext,
    cell_mappings: Iterable[CellMapping],
    timeout: float | None,
    fn: Callable[..., T],
    *args: Any,
    **kwargs: Any,
) -> dict[str, T | BaseException | Sentinel]:
    """Run ``fn(cctx, *args, **kwargs)`` in every cell in parallel; ``{cell_uuid: result}``.

    Waits at most ``timeout`` seconds in total (None: ``[cells]/scatter_timeout``).
    A cell that did not answer in time, or is marked down, maps to
    :data:`did_not_respond_sentinel`; a cell whose fn raised maps to the exception.
    """
    timeout = _default_timeout() if timeout is None else check_timeout(timeout)
    return _gather(context, cell_mappings, timeout, fn, args, kwargs)


def scatter_gather_reads(
    context: RequestContext,
    cell_mappings: Iterable[CellMapping],
    timeout: float | None,
    fn: Callable[..., T],
    *args: Any,
    **kwargs: Any,
) -> dict[str, T | BaseException | Sentinel]:
    """:func:`scatter_gather_cells` for a function that reads the cell's database:
    the cells read in this process (SQLite) take turns on one worker."""
    timeout = _default_timeout() if timeout is None else check_timeout(timeout)
    return _gather(context, cell_mappings, timeout, fn, args, kwargs, reads=True)


def scatter_gather_all_cells(
    context: RequestContext, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> dict[str, T | BaseException | Sentinel]:
    """:func:`scatter_gather_cells` over every mapped cell (cell0 included)."""
    cells = mapping_index().cells()
    return _gather(context, cells, _default_timeout(), fn, args, kwargs)


def scatter_gather_skip_cell0(
    context: RequestContext, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> dict[str, T | BaseException | Sentinel]:
    """:func:`scatter_gather_cells` over every mapped cell except cell0."""
    cells = [cell for cell in mapping_index().cells() if not cell.is_cell0()]
    return _gather(context, cells, _default_timeout(), fn, args, kwargs)


def scatter_gather_single_cell(
    context: RequestContext,
    cell_mapping: CellMapping,
    fn: Callable[..., T],
    *args: Any,
    **kwargs: Any,
) -> dict[str, T | BaseException | Sentinel]:
    """:func:`scatter_gather_cells` on one cell: a call with a timeout and health tracking."""
    return _gather(context, (cell_mapping,), _default_timeout(), fn, args, kwargs)
