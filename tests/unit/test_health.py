"""Cell health: what marks a cell down, the probe that brings it back, the records."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from cellrouter.across import health
from cellrouter.cells.context import RequestContext
from cellrouter.index.cell_mapping import CellMapping

MakeCells = Callable[..., list[CellMapping]]


@pytest.fixture(autouse=True)
def clean_health() -> Iterator[None]:
    health.reset()
    yield
    health.reset()


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def probe_threads(cell: CellMapping) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"cellrouter-probe-{cell.uuid[:8]}"]


def operational_error(orig: BaseException) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, orig)


class FakeDBAPIError(Exception):
    """Stands in for a driver error (what marks a cell down: see test_dberror.py)."""


def test_failure_marks_down_for_the_interval(conf: cfg.ConfigOpts, make_cells: MakeCells) -> None:
    conf.set_override("cell_down_interval", 3600, group="cells")
    cell = make_cells(1)[0]
    health.record_success(cell, 0.01)
    state = health.cell_health()[cell.uuid]
    assert state.up and state.last_latency == 0.01 and state.last_success_at is not None
    assert state.identity == cell.identity

    assert health.record_failure(cell, None) == 3600
    assert health.is_down(cell.uuid) and cell.uuid in health.down_cells()
    state = health.cell_health()[cell.uuid]
    assert not state.up
    assert state.down_since is not None and state.next_probe_at is not None
    assert (state.next_probe_at - state.down_since).total_seconds() == pytest.approx(3600, abs=5)
    assert state.last_error == "timeout"
    assert state.consecutive_failures == 1

    # Already down: counted, not marked again.
    error = operational_error(FakeDBAPIError("refused by mysql://u:pw@h/db"))
    assert health.record_failure(cell, error) is None
    state = health.cell_health()[cell.uuid]
    assert state.consecutive_failures == 2
    assert state.last_error is not None and "pw@" not in state.last_error
    assert len(probe_threads(cell)) == 1  # one probe per down cell, however many failures
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.up = True  # type: ignore[misc]


def test_interval_zero_disables_marking_down(conf: cfg.ConfigOpts, make_cells: MakeCells) -> None:
    conf.set_override("cell_down_interval", 0, group="cells")
    cell = make_cells(1)[0]
    assert health.record_failure(cell, None) is None
    assert not health.is_down(cell.uuid)
    assert health.cell_health()[cell.uuid].consecutive_failures == 1
    health.record_success(cell, 0.5)
    assert health.cell_health()[cell.uuid].consecutive_failures == 0


def test_probe_brings_a_reachable_cell_back_after_the_interval(
    conf: cfg.ConfigOpts, make_cells: MakeCells
) -> None:
    conf.set_override("cell_down_interval", 0.3, group="cells")
    cell = make_cells(1)[0]
    marked = time.monotonic()
    health.record_failure(cell, None)
    wait_for(lambda: not health.is_down(cell.uuid))
    assert time.monotonic() - marked >= 0.3  # not before the interval is over
    state = health.cell_health()[cell.uuid]
    assert state.up and state.consecutive_failures == 0
    assert state.last_latency is not None and state.down_since is None
    wait_for(lambda: not probe_threads(cell))  # the probe thread ends


def test_probe_keeps_an_unreachable_cell_down(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    conf.set_override("cell_down_interval", 0.1, group="cells")
    cell = CellMapping.create(
        admin_ctx,
        name="gone",
        database_connection="sqlite:////nonexistent-cellrouter-dir/cell.db",
        transport_url="none:///",
    )
    health.record_failure(cell, operational_error(FakeDBAPIError("unable to open")))
    wait_for(lambda: health.cell_health()[cell.uuid].consecutive_failures >= 3)
    state = health.cell_health()[cell.uuid]
    assert not state.up
    assert state.last_error is not None and "OperationalError" in state.last_error
    assert len(probe_threads(cell)) == 1


def test_a_hanging_probe_counts_as_failure_and_is_not_stacked(
    conf: cfg.ConfigOpts, make_cells: MakeCells, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf.set_override("cell_down_interval", 0.05, group="cells")
    conf.set_override("health_probe_timeout", 0.1, group="cells")
    cell = make_cells(1)[0]
    gate = threading.Event()
    probes: list[int] = []

    class HangingEngine:
        @contextlib.contextmanager
        def connect(self) -> Iterator[Any]:
            probes.append(1)
            gate.wait(30)
            yield sa.create_engine("sqlite://").connect()

    class FakeConnection:
        engine = HangingEngine()

    monkeypatch.setattr(health.registry, "get", lambda cell: FakeConnection())
    try:
        health.record_failure(cell, None)
        wait_for(lambda: health.cell_health()[cell.uuid].consecutive_failures >= 4)
        assert probes == [1]  # the hung probe query is waited for, not stacked
        assert health.cell_health()[cell.uuid].last_error == "timeout"
    finally:
        gate.set()
    wait_for(lambda: not health.is_down(cell.uuid))  # the probe query finally answered


def test_cell_mapping_change_forgets_the_cell(
    conf: cfg.ConfigOpts, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    conf.set_override("cell_down_interval", 3600, group="cells")
    cell = make_cells(1)[0]
    health.record_failure(cell, None)
    assert health.is_down(cell.uuid)
    cell.update(admin_ctx, name="renamed")  # e.g. its URL got fixed
    assert not health.is_down(cell.uuid)
    assert cell.uuid not in health.cell_health()
    wait_for(lambda: not probe_threads(cell))


def test_reset_stops_probes(conf: cfg.ConfigOpts, make_cells: MakeCells) -> None:
    conf.set_override("cell_down_interval", 3600, group="cells")
    cells = make_cells(2)
    for cell in cells:
        health.record_failure(cell, None)
    assert all(probe_threads(cell) for cell in cells)
    health.reset()
    assert health.cell_health() == {} and not health.down_cells()
    wait_for(lambda: not any(probe_threads(cell) for cell in cells))
