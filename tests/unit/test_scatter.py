"""Scatter-gather: parallelism, timeouts, failures, the elastic pool and the cell list cache."""

from __future__ import annotations

import copy
import logging
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import pymysql
import pytest
import sqlalchemy as sa
from oslo_config import cfg

from cellrouter import workers
from cellrouter.across import health, scatter
from cellrouter.across.scatter import (
    did_not_respond_sentinel,
    is_cell_failure,
    scatter_gather_all_cells,
    scatter_gather_cells,
    scatter_gather_reads,
    scatter_gather_single_cell,
    scatter_gather_skip_cell0,
)
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext
from cellrouter.exception import CellUnavailable
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping

MakeCells = Callable[..., list[CellMapping]]

#: The issue's correctness bound: a scatter returns within timeout + this.
SLACK = 0.2


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    health.reset()
    CACHED_INDEX.reset()
    yield
    health.reset()
    CACHED_INDEX.reset()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event hung cells wait on; always set at teardown so no worker stays blocked."""
    event = threading.Event()
    yield event
    event.set()


def cell_uuid_of(cctx: RequestContext) -> str:
    assert cctx.cell_uuid is not None
    return cctx.cell_uuid


# -- results ---------------------------------------------------------------------------


def test_runs_fn_targeted_at_each_cell(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    cells = make_cells(3)

    def fn(cctx: RequestContext, prefix: str, *, suffix: str) -> str:
        assert cctx is not admin_ctx
        assert cctx.engine is registry.get(cctx.cell_mapping).engine  # type: ignore[arg-type]
        return f"{prefix}{cctx.cell_uuid}{suffix}"

    results = scatter_gather_cells(admin_ctx, cells, 5.0, fn, "<", suffix=">")
    assert results == {cell.uuid: f"<{cell.uuid}>" for cell in cells}
    assert list(results) == [cell.uuid for cell in cells]
    assert admin_ctx.cell_mapping is None  # the caller's context is untouched


def test_empty_cell_list(admin_ctx: RequestContext) -> None:
    assert scatter_gather_cells(admin_ctx, [], 1.0, cell_uuid_of) == {}


def test_cells_run_in_parallel_on_a_pool_sized_to_the_cells(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    cells = make_cells(9)  # more than Nova's fixed pool of 5
    barrier = threading.Barrier(len(cells), timeout=10)
    results = scatter_gather_cells(admin_ctx, cells, 20.0, lambda cctx: barrier.wait() >= 0)
    assert all(value is True for value in results.values()), results


def test_exception_is_the_cells_result_and_is_logged_once(
    make_cells: MakeCells, admin_ctx: RequestContext, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = make_cells(2)

    def fn(cctx: RequestContext) -> str:
        if cctx.cell_uuid == bad.uuid:
            raise KeyError("no such thing")
        return "ok"

    with caplog.at_level(logging.DEBUG, logger="cellrouter"):
        results = scatter_gather_cells(admin_ctx, [good, bad], 5.0, fn)
    assert results[good.uuid] == "ok"
    assert isinstance(results[bad.uuid], KeyError)
    assert is_cell_failure(results[bad.uuid]) and not is_cell_failure(results[good.uuid])
    records = [r for r in caplog.records if bad.uuid in r.getMessage()]
    assert len(records) == 1
    assert bad.identity in records[0].getMessage()
    assert "KeyError" in records[0].getMessage()
    # An ordinary exception means the cell answered: it is not marked down.
    assert health.cell_health()[bad.uuid].up


def test_sentinel_and_failure_predicate() -> None:
    assert repr(did_not_respond_sentinel) == "did_not_respond_sentinel"
    assert copy.deepcopy(did_not_respond_sentinel) is did_not_respond_sentinel
    assert pickle.loads(pickle.dumps(did_not_respond_sentinel)) is did_not_respond_sentinel
    assert is_cell_failure(did_not_respond_sentinel)
    assert is_cell_failure(ValueError("x"))
    assert not is_cell_failure(None)
    assert not is_cell_failure([])


# -- timeouts and health ---------------------------------------------------------------


def test_hung_cell_times_out_is_skipped_while_down_and_used_again_after_recovery(
    conf: cfg.ConfigOpts,
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    gate: threading.Event,
) -> None:
    # Long enough that the cell is surely still down for the second scatter on a slow machine.
    conf.set_override("cell_down_interval", 2.0, group="cells")
    conf.set_override("health_probe_timeout", 2.0, group="cells")
    cells = make_cells(3)
    hung = cells[1]
    calls: list[str] = []

    def fn(cctx: RequestContext) -> str:
        calls.append(cell_uuid_of(cctx))
        if cctx.cell_uuid == hung.uuid and not gate.is_set():
            gate.wait(30)
        return cell_uuid_of(cctx)

    timeout = 0.5
    conf.set_override("scatter_timeout", timeout, group="cells")  # the cell's own bound
    start = time.monotonic()
    results = scatter_gather_cells(admin_ctx, cells, timeout, fn)
    elapsed = time.monotonic() - start
    assert elapsed < timeout + SLACK, elapsed
    assert results[hung.uuid] is did_not_respond_sentinel
    assert {results[c.uuid] for c in cells if c is not hung} == {cells[0].uuid, cells[2].uuid}
    assert not health.cell_health()[hung.uuid].up

    # Within the down interval the cell is answered for at once, without running fn:
    # a generous timeout the scatter would have to wait out if it waited for the cell.
    calls.clear()
    start = time.monotonic()
    results = scatter_gather_cells(admin_ctx, cells, 30.0, fn)
    assert time.monotonic() - start < 15.0
    assert results[hung.uuid] is did_not_respond_sentinel
    assert sorted(calls) == sorted([cells[0].uuid, cells[2].uuid])

    # The cell recovers; the probe notices at the end of the interval.
    gate.set()
    deadline = time.monotonic() + 10
    while not health.cell_health()[hung.uuid].up:
        assert time.monotonic() < deadline, health.cell_health()[hung.uuid]
        time.sleep(0.05)
    results = scatter_gather_cells(admin_ctx, cells, 10.0, fn)
    assert results == {cell.uuid: cell.uuid for cell in cells}


def test_straggler_never_starves_later_calls(
    conf: cfg.ConfigOpts,
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    gate: threading.Event,
) -> None:
    conf.set_override("cell_down_interval", 0, group="cells")  # no skipping: always dispatch
    conf.set_override("scatter_timeout", 0.1, group="cells")
    cells = make_cells(4)
    hung = cells[0]

    def fn(cctx: RequestContext, barrier: threading.Barrier | None) -> str:
        if cctx.cell_uuid == hung.uuid:
            gate.wait(30)
        elif barrier is not None:
            barrier.wait()
        return "ok"

    for _ in range(3):  # three stragglers left hanging
        results = scatter_gather_cells(admin_ctx, cells, 0.1, fn, None)
        assert results[hung.uuid] is did_not_respond_sentinel
    assert health.cell_health()[hung.uuid].up  # tracking is off
    assert health.cell_health()[hung.uuid].consecutive_failures == 3

    # The others still run, all at once, although several workers are blocked.
    barrier = threading.Barrier(3, timeout=10)
    results = scatter_gather_cells(admin_ctx, cells[1:], 10.0, fn, barrier)
    assert results == {cell.uuid: "ok" for cell in cells[1:]}


# -- reads: SQLite cells take turns ----------------------------------------------------


def test_sqlite_cells_are_read_in_turn_by_one_worker(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    cells = make_cells(6)
    server = CellMapping.create(  # a server database: read in a job of its own
        admin_ctx,
        name="server",
        database_connection="mysql+pymysql://user:secret@127.0.0.1:1/cell",
        transport_url="fake://server/",
    )
    threads: dict[str, int] = {}

    def fn(cctx: RequestContext) -> str:
        threads[cell_uuid_of(cctx)] = threading.get_ident()
        return cell_uuid_of(cctx)

    everyone = [*cells, server]
    assert scatter_gather_reads(admin_ctx, everyone, 10.0, fn) == {
        cell.uuid: cell.uuid for cell in everyone
    }
    assert len({threads[cell.uuid] for cell in cells}) == 1
    assert threads[server.uuid] != threads[cells[0].uuid]
    # The generic scatter makes no such assumption about fn: one job per cell.
    barrier = threading.Barrier(len(cells), timeout=10)
    results = scatter_gather_cells(admin_ctx, cells, 20.0, lambda cctx: barrier.wait() >= 0)
    assert all(value is True for value in results.values()), results


@pytest.mark.parametrize("timeout", [0.3, 5.0])
def test_a_stuck_read_hands_the_cells_after_it_to_another_worker(
    make_cells: MakeCells, admin_ctx: RequestContext, gate: threading.Event, timeout: float
) -> None:
    cells = make_cells(6)
    stuck = {cells[0].uuid, cells[3].uuid}
    start = time.monotonic()
    answered: dict[str, float] = {}

    def fn(cctx: RequestContext) -> str:
        if cell_uuid_of(cctx) in stuck:
            gate.wait(30)
        answered[cell_uuid_of(cctx)] = time.monotonic() - start
        return cell_uuid_of(cctx)

    results = scatter_gather_reads(admin_ctx, cells, timeout, fn)
    assert time.monotonic() - start < timeout + SLACK
    for cell in cells:
        if cell.uuid in stuck:
            assert results[cell.uuid] is did_not_respond_sentinel
        else:
            assert results[cell.uuid] == cell.uuid
            # each stuck cell before it cost one stall interval, not the timeout
            assert answered[cell.uuid] < min(timeout, 4 * scatter.STALL_SECONDS + 1.0)


def test_cells_still_waiting_for_their_turn_are_reported_not_marked_down(
    conf: cfg.ConfigOpts,
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    gate: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conf.set_override("scatter_timeout", 0.3, group="cells")
    cells = make_cells(10)  # every read sticks: a worker joins per stall, not enough of them

    def fn(cctx: RequestContext) -> str:
        gate.wait(30)
        return "ok"

    with caplog.at_level(logging.WARNING, logger="cellrouter.across.scatter"):
        results = scatter_gather_reads(admin_ctx, cells, 0.3, fn)
    assert all(value is did_not_respond_sentinel for value in results.values())
    waiting = {
        cell.uuid
        for cell in cells
        for record in caplog.records
        if cell.uuid in record.getMessage()
        and "was not read within 0.3s: the cells read before it took the time"
        in record.getMessage()
    }
    assert waiting and len(waiting) <= len(cells) - 2
    for cell in cells:  # read and stuck: down; never read: nothing is known about it
        assert health.is_down(cell.uuid) is (cell.uuid not in waiting), cell


def test_connection_error_marks_down_and_logs_once_without_secrets(
    conf: cfg.ConfigOpts,
    api_db: str,
    admin_ctx: RequestContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-Pa55"
    # Nothing listens on port 1: connecting fails at once, no server needed.
    cell = CellMapping.create(
        admin_ctx,
        name="unreachable",
        database_connection=f"mysql+pymysql://nova:{secret}@127.0.0.1:1/nova",
        transport_url=f"rabbit://nova:{secret}@127.0.0.1:1/",
    )

    def connect(cctx: RequestContext) -> None:
        with cctx.engine.connect():
            pass

    with caplog.at_level(logging.DEBUG):
        result = scatter_gather_single_cell(admin_ctx, cell, connect)[cell.uuid]
        again = scatter_gather_single_cell(admin_ctx, cell, connect)[cell.uuid]
    assert isinstance(result, CellUnavailable) and result.kwargs["uuid"] == cell.uuid
    assert isinstance(result.__cause__, pymysql.err.OperationalError)  # the driver's own
    assert again is did_not_respond_sentinel  # marked down: not even tried
    state = health.cell_health()[cell.uuid]
    assert not state.up and state.last_error and "OperationalError" in state.last_error
    assert secret not in repr(state)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert cell.identity in warnings[0].getMessage()
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()


def test_a_query_error_does_not_mark_the_cell_down_an_unreachable_cell_is(
    conf: cfg.ConfigOpts, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    conf.set_override("cell_down_interval", 3600, group="cells")
    drifted = make_cells(2)  # e.g. a schema that lacks a column: the server answers
    unreachable = CellMapping.create(
        admin_ctx,
        name="unreachable",
        database_connection="sqlite:////nonexistent-cellrouter-dir/cell.db",
        transport_url="none:///",
    )
    cells = [*drifted, unreachable]

    def query(cctx: RequestContext) -> object:
        with cctx.engine.connect() as conn:
            return conn.execute(sa.text("SELECT no_such_column FROM instances")).all()

    results = scatter_gather_cells(admin_ctx, cells, 30.0, query)
    for cell in drifted:
        assert isinstance(results[cell.uuid], sa.exc.OperationalError)
        assert "no such column" in str(results[cell.uuid])
        assert not health.is_down(cell.uuid) and health.cell_health()[cell.uuid].up
    assert isinstance(results[unreachable.uuid], CellUnavailable)
    assert isinstance(results[unreachable.uuid].__cause__, sqlite3.OperationalError)
    assert health.is_down(unreachable.uuid)

    again = scatter_gather_cells(admin_ctx, cells, 30.0, query)
    assert all(isinstance(again[cell.uuid], sa.exc.OperationalError) for cell in drifted)
    assert again[unreachable.uuid] is did_not_respond_sentinel  # skipped while down


# -- the pool --------------------------------------------------------------------------


def test_pool_reuses_idle_threads_and_retires_them(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = workers._Pool(idle_seconds=0.2)
    monkeypatch.setattr(workers, "_pool", pool)
    done = threading.Semaphore(0)
    names: set[str] = set()

    def job() -> None:
        names.add(threading.current_thread().name)
        done.release()

    for _ in range(5):  # one after the other: one thread does it all
        workers.submit(job)
        assert done.acquire(timeout=5)
        deadline = time.monotonic() + 5
        while pool.stats()[1] != 1:  # wait until it is idle again
            assert time.monotonic() < deadline
            time.sleep(0.005)
    assert pool.stats() == (1, 1)

    release = threading.Event()
    for _ in range(3):  # concurrently blocked jobs: one thread each
        workers.submit(lambda: (release.wait(5), done.release()))
    assert pool.stats()[0] == 3
    release.set()
    for _ in range(3):
        assert done.acquire(timeout=5)

    deadline = time.monotonic() + 5
    while pool.stats() != (0, 0):
        assert time.monotonic() < deadline, pool.stats()
        time.sleep(0.02)


def test_a_failing_job_does_not_kill_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = workers._Pool()
    monkeypatch.setattr(workers, "_pool", pool)
    ran = threading.Event()

    def boom() -> None:
        raise RuntimeError("job bug")

    workers.submit(boom)
    deadline = time.monotonic() + 5
    while pool.stats()[1] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    workers.submit(ran.set)
    assert ran.wait(5)
    assert pool.stats()[0] == 1


# -- wrappers and the cell list --------------------------------------------------------


def test_wrappers(make_cells: MakeCells, admin_ctx: RequestContext) -> None:
    cell0 = CellMapping.create(
        admin_ctx,
        uuid=CELL0_UUID,
        name="cell0",
        database_connection=make_cells(1)[0].database_connection,
        transport_url="none:///",
    )
    cells = make_cells(2)
    every = scatter_gather_all_cells(admin_ctx, cell_uuid_of)
    assert CELL0_UUID in every and all(c.uuid in every for c in cells)
    assert every == {uuid: uuid for uuid in every}
    no_cell0 = scatter_gather_skip_cell0(admin_ctx, cell_uuid_of)
    assert set(no_cell0) == set(every) - {cell0.uuid}
    assert scatter_gather_single_cell(admin_ctx, cells[1], cell_uuid_of) == {
        cells[1].uuid: cells[1].uuid
    }


def test_default_timeout_comes_from_the_options(
    conf: cfg.ConfigOpts, make_cells: MakeCells, admin_ctx: RequestContext, gate: threading.Event
) -> None:
    conf.set_override("scatter_timeout", 0.2, group="cells")
    cell = make_cells(1)[0]
    start = time.monotonic()
    result = scatter_gather_single_cell(admin_ctx, cell, lambda cctx: gate.wait(30))
    assert time.monotonic() - start < 0.2 + SLACK
    assert result == {cell.uuid: did_not_respond_sentinel}
    assert scatter_gather_cells(admin_ctx, [cell], None, lambda cctx: 1) == {
        cell.uuid: did_not_respond_sentinel  # marked down meanwhile
    }
