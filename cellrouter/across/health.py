"""Cell health: which cells failed recently, so scatters stop waiting for them.

A cell that timed out or failed to connect is marked *down* for
``[cells]/cell_down_interval`` seconds. While it is down, scatters answer for
it at once with :data:`~cellrouter.across.scatter.did_not_respond_sentinel`, and one
background probe thread per down cell runs ``SELECT 1`` on the cell's engine
at the end of each interval (waiting at most ``[cells]/health_probe_timeout``):
success brings the cell back, failure keeps it down for another interval. So a
dead cell costs one request the scatter timeout, not every request.

Only connection-type errors (:func:`cellrouter.db.dberror.is_connection_error`)
mark a cell down, and of those only the ones where nobody answered (refused,
unreachable, timed out): a connection lost to a database restart fails one
request and the pool reconnects. Other exceptions from the scattered function
(bugs, NotFound, an unknown column in a drifted schema...) mean the cell
answered. While a cell is down, the show path fails at once too: targeting it
raises CellUnavailable and its engine opens no new connection (its probe's
thread excepted).

A cell's message queue has a health of its own: a failed cast marks it down
for the same interval, casts then fail at once, and the first cast after the
interval tries again (:func:`queue_refuses`).

Readers never lock: the set of down cells is a dict replaced whole.
:func:`cell_health` gives the state as immutable records for the CLI and for
metrics. Error texts are masked (:func:`cellrouter.db.dberror.describe`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Mapping

import sqlalchemy as sa

from cellrouter import clock, workers
from cellrouter.cells import registry
from cellrouter.conf import get_conf
from cellrouter.db import dberror
from cellrouter.db.types import utcnow
from cellrouter.index.cell_mapping import CellMapping

__all__ = [
    "CellHealth",
    "cell_health",
    "down_cells",
    "is_down",
    "last_failure",
    "queue_refuses",
    "record_failure",
    "record_queue_failure",
    "record_queue_success",
    "record_success",
    "refuses",
    "reset",
]

LOG = logging.getLogger(__name__)

#: ``last_error`` of a cell that did not answer in time.
TIMEOUT = "timeout"


@dataclasses.dataclass(frozen=True, slots=True)
class CellHealth:
    """What this process knows about one cell's health (UTC timestamps)."""

    cell_uuid: str
    identity: str
    up: bool
    #: when the cell was marked down (None: it is up)
    down_since: datetime.datetime | None
    #: when the background probe checks it next (None: it is up)
    next_probe_at: datetime.datetime | None
    #: timeouts, connection errors and failed probes since the last success
    consecutive_failures: int
    #: ``"timeout"`` or ``"ErrorClass: masked message"`` of the last failure
    last_error: str | None
    last_failure_at: datetime.datetime | None
    #: seconds the last successful call (or probe) took
    last_latency: float | None
    last_success_at: datetime.datetime | None
    #: the cell's message queue: False while casts to it fail fast after a failure
    queue_up: bool = True
    #: ``"timeout"`` or ``"ErrorClass: masked message"`` of the queue's last failure
    queue_last_error: str | None = None
    queue_last_failure_at: datetime.datetime | None = None


class _State:
    """Mutable per-cell bookkeeping; :func:`cell_health` snapshots it."""

    __slots__ = (
        "cell",
        "consecutive_failures",
        "down_since",
        "last_error",
        "last_exception",
        "last_failure_at",
        "last_latency",
        "last_success",
        "probing",
        "queue_last_error",
        "queue_last_exception",
        "queue_last_failure_at",
        "stop",
    )

    def __init__(self, cell: CellMapping) -> None:
        self.cell = cell
        self.consecutive_failures = 0
        self.down_since: datetime.datetime | None = None
        self.last_error: str | None = None
        self.last_exception: BaseException | None = None
        self.last_failure_at: datetime.datetime | None = None
        self.last_latency: float | None = None
        self.last_success: float | None = None  # time.time(): cheap on the hot path
        self.probing = False
        self.queue_last_error: str | None = None
        self.queue_last_exception: BaseException | None = None
        self.queue_last_failure_at: datetime.datetime | None = None
        self.stop = threading.Event()  # set when the cell is forgotten: its probe ends


_lock = threading.Lock()
_states: dict[str, _State] = {}
#: cell uuid -> monotonic time of its next probe. Replaced whole under _lock.
_down: dict[str, float] = {}
#: cell uuid -> monotonic time until which casts to its queue fail fast. Replaced whole.
_queue_down: dict[str, float] = {}
#: bumped by reset(): probes of an older generation stop.
_generation = 0
#: ``active`` is set on the thread running a probe: only it may connect to a down cell.
_probe_thread = threading.local()


def down_cells() -> Mapping[str, float]:
    """The cells currently down (uuid -> monotonic time of their next probe). Lock-free."""
    return _down


def is_down(cell_uuid: str) -> bool:
    return cell_uuid in _down


def refuses(cell_uuid: str) -> bool:
    """True when a new connection to the cell's database must not even be tried:
    it is down and this thread is not its probe."""
    return cell_uuid in _down and not getattr(_probe_thread, "active", False)


def _state(cell: CellMapping) -> _State:
    state = _states.get(cell.uuid)
    if state is None:
        with _lock:
            state = _states.get(cell.uuid)
            if state is None:
                state = _State(cell)
                _states[cell.uuid] = state
    return state


def record_success(cell: CellMapping, latency: float) -> None:
    """``cell`` answered in ``latency`` seconds (cheap: called for every cell of every scatter)."""
    state = _states.get(cell.uuid) or _state(cell)
    state.last_latency = latency
    state.last_success = clock.current().time()
    if state.consecutive_failures:
        state.consecutive_failures = 0
    state.cell = cell


def record_failure(cell: CellMapping, error: BaseException | None) -> float | None:
    """``cell`` timed out (``error`` None) or failed to connect (``error``).

    Marks the cell down unless ``[cells]/cell_down_interval`` is 0. Returns
    the down interval when this call marked it down (None: it already was, or
    health tracking is off), so the caller can say so in its one log line.
    """
    if getattr(_probe_thread, "active", False):
        return None  # the probe loop keeps its own account
    interval = get_conf().cells.cell_down_interval
    state = _state(cell)
    state.cell = cell
    state.consecutive_failures += 1
    state.last_error = TIMEOUT if error is None else dberror.describe(error)
    state.last_exception = _detached(error)
    state.last_failure_at = utcnow()
    if interval <= 0:
        return None
    global _down
    with _lock:
        if cell.uuid in _down or _states.get(cell.uuid) is not state:
            return None
        state.down_since = state.last_failure_at
        _down = {**_down, cell.uuid: clock.current().monotonic() + interval}
        start_probe = not state.probing
        state.probing = True
        generation = _generation
    if start_probe:
        threading.Thread(
            target=_probe_loop,
            args=(state, generation),
            name=f"cellrouter-probe-{cell.uuid[:8]}",
            daemon=True,
        ).start()
    return interval


def _detached(error: BaseException | None) -> BaseException:
    """What to keep of a failure as the cause of later fail-fast errors: the
    driver's exception without its traceback (no frames kept alive)."""
    if error is None:
        return TimeoutError("no answer within the configured time")
    inner = getattr(error, "orig", None) or error.__cause__ or error
    try:
        kept = copy.copy(inner)
    except Exception:  # noqa: BLE001 - an exception that cannot be copied: describe it
        kept = RuntimeError(dberror.describe(inner))
    return kept.with_traceback(None)


def last_failure(cell_uuid: str, queue: bool = False) -> BaseException | None:
    """The driver exception that last failed the cell's database (or ``queue``)."""
    state = _states.get(cell_uuid)
    if state is None:
        return None
    return state.queue_last_exception if queue else state.last_exception


def _mark_up(state: _State, latency: float | None) -> bool:
    """The probe of ``state`` got an answer: the cell is up (unless forgotten meanwhile)."""
    global _down
    cell_uuid = state.cell.uuid
    with _lock:
        if _states.get(cell_uuid) is not state or cell_uuid not in _down:
            return False
        _down = {key: value for key, value in _down.items() if key != cell_uuid}
        state.down_since = None
        state.consecutive_failures = 0
        state.last_latency = latency
        state.last_success = clock.current().time()
    return True


def _probe_loop(state: _State, generation: int) -> None:
    """One thread per down cell: probe at the end of each interval until it answers."""
    cell_uuid = state.cell.uuid
    pending: threading.Event | None = None  # the last probe query, if still hanging
    try:
        while True:
            with _lock:  # decide to stop and clear ``probing`` atomically
                next_probe = _down.get(cell_uuid)
                if (
                    next_probe is None
                    or generation != _generation
                    or _states.get(cell_uuid) is not state
                ):
                    state.probing = False
                    return
            delay = next_probe - clock.current().monotonic()
            if delay > 0:
                state.stop.wait(delay)
                continue
            conf = get_conf().cells
            ok, error, latency, pending = _probe_once(
                state.cell, conf.health_probe_timeout, pending
            )
            if ok:
                if _mark_up(state, latency):
                    LOG.info("Cell %s is back up (probe took %.3fs)", state.cell.identity, latency)
                continue
            state.consecutive_failures += 1
            state.last_error = error
            state.last_failure_at = utcnow()
            _extend(cell_uuid, conf.cell_down_interval)
            LOG.debug("Cell %s is still down: %s", state.cell.identity, error)
    except Exception:  # noqa: BLE001 - never leave a cell down without a probe
        LOG.exception("Health probe of cell %s failed; marking it up", state.cell.identity)
        _mark_up(state, None)
        with _lock:
            state.probing = False


def _extend(cell_uuid: str, interval: float) -> None:
    global _down
    with _lock:
        if cell_uuid in _down:
            _down = {**_down, cell_uuid: clock.current().monotonic() + max(interval, 0.05)}


def queue_refuses(cell_uuid: str) -> bool:
    """True while casts to the cell's queue fail fast after a recent failure.

    The first cast after ``[cells]/cell_down_interval`` tries the broker again
    (no probe thread: the next real cast is the probe).
    """
    until = _queue_down.get(cell_uuid)
    return until is not None and clock.current().monotonic() < until


def record_queue_failure(cell: CellMapping, error: BaseException | None) -> None:
    """A cast or call to ``cell``'s queue failed (``error`` None: it timed out)."""
    global _queue_down
    interval = get_conf().cells.cell_down_interval
    state = _state(cell)
    state.queue_last_error = TIMEOUT if error is None else dberror.describe(error)
    state.queue_last_exception = _detached(error)
    state.queue_last_failure_at = utcnow()
    if interval > 0:
        with _lock:
            _queue_down = {**_queue_down, cell.uuid: clock.current().monotonic() + interval}


def record_queue_success(cell_uuid: str) -> None:
    """A cast or call reached ``cell``'s broker (cheap when it was never down)."""
    global _queue_down
    if cell_uuid in _queue_down:
        with _lock:
            _queue_down = {k: v for k, v in _queue_down.items() if k != cell_uuid}


def _probe_once(
    cell: CellMapping, timeout: float, pending: threading.Event | None
) -> tuple[bool, str | None, float, threading.Event | None]:
    """Run ``SELECT 1`` on the cell's engine in a scatter worker, waiting ``timeout``.

    Returns (ok, error, latency, still-running probe). A probe that is still
    hanging from the previous round counts as a failure without starting another.
    """
    if pending is not None and not pending.is_set():
        return False, TIMEOUT, 0.0, pending
    done = threading.Event()
    outcome: list[BaseException | None] = []

    def probe() -> None:
        _probe_thread.active = True
        try:
            with registry.get(cell).engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported, never raised here
            outcome.append(exc)
        finally:
            _probe_thread.active = False
            done.set()

    start = time.perf_counter()
    workers.submit(probe)
    finished = done.wait(timeout)
    latency = time.perf_counter() - start
    if not finished:
        return False, TIMEOUT, latency, done
    error = outcome[0]
    if error is None:
        return True, None, latency, None
    return False, dberror.describe(error), latency, None


def cell_health() -> dict[str, CellHealth]:
    """Every cell this process has talked to, keyed by uuid, as immutable records."""
    now_wall = utcnow()
    now_mono = clock.current().monotonic()
    down = _down
    queue_down = _queue_down
    records = {}
    for cell_uuid, state in list(_states.items()):
        next_probe = down.get(cell_uuid)
        records[cell_uuid] = CellHealth(
            cell_uuid=cell_uuid,
            identity=state.cell.identity,
            up=next_probe is None,
            down_since=state.down_since if next_probe is not None else None,
            next_probe_at=(
                now_wall + datetime.timedelta(seconds=max(next_probe - now_mono, 0.0))
                if next_probe is not None
                else None
            ),
            consecutive_failures=state.consecutive_failures,
            last_error=state.last_error,
            last_failure_at=state.last_failure_at,
            last_latency=state.last_latency,
            last_success_at=(
                datetime.datetime.fromtimestamp(state.last_success, datetime.UTC).replace(
                    tzinfo=None
                )
                if state.last_success is not None
                else None
            ),
            queue_up=queue_down.get(cell_uuid, 0.0) <= now_mono,
            queue_last_error=state.queue_last_error,
            queue_last_failure_at=state.queue_last_failure_at,
        )
    return records


def forget(cell_uuids: tuple[str, ...] | list[str]) -> None:
    """Drop what is known about these cells (their mapping changed or was deleted)."""
    global _down, _queue_down
    drop = set(cell_uuids)
    with _lock:
        for cell_uuid in drop:
            state = _states.pop(cell_uuid, None)
            if state is not None:
                state.stop.set()
        if drop & _down.keys():
            _down = {key: value for key, value in _down.items() if key not in drop}
        if drop & _queue_down.keys():
            _queue_down = {k: v for k, v in _queue_down.items() if k not in drop}


def reset() -> None:
    """Forget everything and stop every probe (tests, configuration reload)."""
    global _down, _generation, _queue_down
    with _lock:
        for state in _states.values():
            state.stop.set()
        _states.clear()
        _down = {}
        _queue_down = {}
        _generation += 1


def on_mapping_changed(kind: str, keys: tuple[str, ...]) -> None:
    """A cell's mapping changed: a new URL may have fixed it, so judge it afresh."""
    if kind == "cell":
        forget(keys)


def reset_after_fork() -> None:
    """In a forked child: a fresh lock and no state (the parent's probe threads do
    not exist here). Called by the runtime's fork hook."""
    global _lock
    _lock = threading.Lock()
    reset()
