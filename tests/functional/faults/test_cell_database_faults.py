"""A failing cell database hurts only itself.

Three cells with a few hundred instances each, on MariaDB or on PostgreSQL
(every test runs with both, see ``cell_backend``); the third one's database is
reached through a fault proxy. Eight threads show instances (in
the failing cell and in the healthy ones), list every cell and scatter over
every cell while the proxy blackholes, refuses or stalls the cell's database,
then forwards again. Every call is timed and checked against the configured
bounds; the measured numbers are printed as ``FAULT-METRIC`` lines.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

import cellrouter
from faults import harness
from faults.harness import Call, Deployment, Load

pytestmark = pytest.mark.parametrize("cell_backend", harness.CELL_BACKENDS, indirect=True)

#: a query the server answers after 0.6 s, per cell backend
SLEEP_SQL = {"mariadb": "SELECT SLEEP(0.6)", "postgresql": "SELECT pg_sleep(0.6)"}


def _shows(dep: Deployment, cell_uuid: str) -> Any:
    rows = dep.rows(cell_uuid)
    ctx = cellrouter.get_admin_context()

    def call(i: int) -> Any:
        return harness.show(ctx, rows[(i * 7) % len(rows)], route=i % 2 == 1)

    return call


def _lists(dep: Deployment) -> Any:
    ctx = cellrouter.get_admin_context()
    return lambda i: harness.list_all(ctx, dep.scan)


def _scatters(dep: Deployment) -> Any:
    ctx = cellrouter.get_admin_context()
    return lambda i: harness.scatter_counts(ctx, dep.scan)


def _standard_load(dep: Deployment) -> Load:
    """8 threads: 2 shows in the failing cell, 2 in healthy ones, 2 lists, 2 scatters."""
    load = Load(dep.scan, max_seconds=60.0)
    load.add("show", dep.bad.uuid, _shows(dep, dep.bad.uuid))
    load.add("show", dep.bad.uuid, _shows(dep, dep.bad.uuid))
    for cell in dep.good:
        load.add("show", cell.uuid, _shows(dep, cell.uuid))
    for _ in range(2):
        load.add("list", None, _lists(dep))
        load.add("scatter", None, _scatters(dep))
    return load


def _warm(dep: Deployment) -> None:
    for cell in dep.cells:
        harness.show(dep.ctx, dep.rows(cell.uuid)[0])
    summary = harness.list_all(dep.ctx)
    assert not summary.partial
    harness.check_list(summary, dep.world)


def _scatter_failed(call: Call, checks: harness.Checks) -> set[str]:
    """The cells a scatter reports as failed; its healthy cells must have their counts."""
    if not checks.expect(call.ok, f"scatter raised {call.error!r}", key="scatter raised"):
        return set()
    failed = set()
    for cell_uuid, value in call.value.items():
        if cellrouter.is_cell_failure(value):
            failed.add(cell_uuid)
        else:
            checks.expect(
                value == harness.INSTANCES_PER_CELL,
                f"scatter counted {value} instances in {cell_uuid}",
                key="scatter count",
            )
    return failed


def _run_cell_fault(dep: Deployment, fault: str, metric: dict[str, Any]) -> None:
    bad = dep.bad.uuid
    good = {cell.uuid for cell in dep.good}
    _warm(dep)
    load = _standard_load(dep)
    slow: dict[str, Any] = {}
    slow_thread = threading.Thread(target=_slow_query, args=(dep, slow), daemon=True)
    load.start()
    try:
        time.sleep(1.5)  # baseline
        if fault == "stall":
            slow_thread.start()
            time.sleep(0.3)  # the slow query is running in the server
        t0 = time.monotonic()
        dep.cell_proxy.set_mode(fault)
        # One second past the bound, no thread may still be inside a call.
        time.sleep(harness.SHOW_BOUND + 1.0)
        stuck = load.stuck(older_than=harness.SHOW_BOUND + 1.0)
        dep.scan.add_health()
        health_during = cellrouter.cell_health().get(bad)
        time.sleep(0.5)
        t1 = time.monotonic()
        dep.cell_proxy.forward()
        recovery, last = harness.poll(
            lambda: harness.list_all(dep.ctx, dep.scan),
            lambda summary: not summary.partial,
            harness.RECOVERY_BOUND,
        )
        t_recovered = time.monotonic()
        show_recovery, last_show = harness.poll(
            lambda: harness.show(dep.ctx, dep.rows(bad)[1]), lambda _: True, harness.SHOW_BOUND
        )
        time.sleep(0.5)  # the load goes on over the recovered cell
    finally:
        left = load.stop(timeout=harness.SHOW_BOUND + harness.MARGIN)
        if slow_thread.is_alive() or fault == "stall":
            slow_thread.join(timeout=harness.SHOW_BOUND)
    for value in (last, last_show):
        if isinstance(value, BaseException):
            dep.scan.add(value)

    checks = harness.Checks()
    # Nothing hangs.
    checks.expect(left == 0, f"{left} load threads still running after the stop")
    checks.expect(stuck == 0, f"{stuck} threads still inside a call 1 s after the bound")
    for call in load.calls:
        bound = harness.SHOW_BOUND if call.op == "show" else harness.LIST_BOUND
        checks.expect(
            call.duration <= bound,
            f"a {call.op} took {call.duration:.2f}s > {bound}s ({call.error!r})",
            key=f"{call.op} over its bound",
        )

    # Before the fault everything worked.
    before = load.select(before=t0)
    checks.expect(before, "no calls before the fault")
    for call in before:
        checks.expect(call.ok, f"{call.op} failed before the fault: {call.error!r}", key="before")

    # Shows: the failing cell's fail with CellUnavailable of that cell, chained
    # to the driver's error; the healthy cells' never fail and stay fast.
    bad_failed = [c for c in load.select("show", bad) if not c.ok]
    bad_during = load.select("show", bad, after=t0 + harness.EDGE, before=t1)
    checks.expect(bad_during, "no show in the failing cell during the fault")
    for call in bad_during:
        checks.expect(not call.ok, f"a show in the {fault} cell succeeded", key="bad show ok")
    for call in bad_failed:
        checks.unavailable(call.error, bad, "show in the failing cell")
    good_during = [c for c in load.select("show", after=t0) if c.target in good]
    good_before = [c.duration for c in load.select("show", before=t0) if c.target in good]
    checks.expect(good_during, "no show in the healthy cells during the fault")
    for call in good_during:
        checks.expect(call.ok, f"a show in a healthy cell failed: {call.error!r}", key="good show")
    good_p99 = harness.percentile([c.duration for c in good_during], 99)
    checks.expect(good_p99 < harness.GOOD_P99, f"healthy cells' show p99 {good_p99:.3f}s")

    # Lists and scatters: partial (only the failing cell missing), within the
    # scatter timeout, fast once the cell is known down; never missing rows.
    for call in load.select("list"):
        if checks.expect(call.ok, f"list raised {call.error!r}", key="list raised"):
            problem = harness.list_problem(call.value, dep.world)
            checks.expect(problem is None, f"list: {problem}", key="list rows")
            checks.expect(set(call.value.failed) <= {bad}, f"list failed {call.value.failed}")
    for call in load.select("scatter"):
        failed = _scatter_failed(call, checks)
        checks.expect(failed <= {bad}, f"scatter failed healthy cells {failed}", key="scatter")
    lists_during = [c for c in load.select("list", after=t0 + harness.EDGE, before=t1) if c.ok]
    checks.expect(lists_during, "no list during the fault")
    for call in lists_during:
        checks.expect(bad in call.value.failed, "a list during the fault was not partial", "lp")
    for call in load.select("scatter", after=t0 + harness.EDGE, before=t1):
        checks.expect(bad in _scatter_failed(call, checks), "a scatter missed the failure", "sp")
    partial = [c for c in load.select("list") if c.ok and c.value.partial and t0 < c.end <= t1]
    first_partial = min(partial, key=lambda c: c.end, default=None)
    later: list[Call] = []
    if checks.expect(first_partial, "no partial list during the fault"):
        checks.expect(first_partial.duration <= harness.LIST_BOUND, "first partial list slow")
        later = [
            c
            for op in ("list", "scatter")
            for c in load.select(op, after=first_partial.end + harness.EDGE, before=t1)
        ]
        checks.expect(later, "no list or scatter after the cell was known down")
        for call in later:
            checks.expect(
                call.duration <= harness.FAST,
                f"a {call.op} after the cell was known down took {call.duration:.2f}s",
                key="later slow",
            )
    checks.expect(
        health_during is not None and not health_during.up,
        f"cell_health() does not show the cell down during the fault: {health_during!r}",
    )

    # Recovery without restart: lists complete again, the cell's shows work.
    checks.expect(recovery <= harness.RECOVERY_BOUND, f"lists still partial: {last!r}")
    checks.expect(show_recovery < float("inf"), f"shows still failing: {last_show!r}")
    for call in load.select("list", after=t_recovered + harness.EDGE):
        checks.expect(call.ok and not call.value.partial, "a list after recovery is partial")
    if fault == "stall":
        checks.unavailable(slow.get("error"), bad, "the stalled query")
        checks.expect(
            slow.get("duration", 99) <= harness.QUERY_TIMEOUT + harness.MARGIN,
            f"the stalled query failed after {slow.get('duration')}s",
        )

    first_error = min(bad_failed, key=lambda c: c.end, default=None)
    metric.update(
        fault=fault,
        calls=len(load.calls),
        bad_show_first_error_s=first_error.duration if first_error else float("nan"),
        bad_show_error_max_s=max((c.duration for c in bad_failed), default=float("nan")),
        bad_show_error_p50_s=harness.median([c.duration for c in bad_failed]),
        good_show_p99_before_s=harness.percentile(good_before, 99),
        good_show_p99_during_s=good_p99,
        partial_list_max_s=max((c.duration for c in partial), default=float("nan")),
        later_list_scatter_p50_s=harness.median([c.duration for c in later]),
        stuck_threads_1s_after_bound=stuck,
        threads_left=left,
        lists_complete_after_recovery_s=recovery,
        bad_show_ok_after_recovery_s=show_recovery,
    )
    if fault == "stall":
        metric["stalled_query_error_s"] = slow.get("duration", float("nan"))
    checks.done()


def _slow_query(dep: Deployment, out: dict[str, Any]) -> None:
    """A query still running in the server when the answers stall (mid-query)."""
    start = time.monotonic()
    try:
        with cellrouter.target_cell(dep.ctx, dep.bad) as cctx:
            with cctx.engine.connect() as conn:
                conn.execute(sa.text(SLEEP_SQL[dep.world.backend])).all()
    except Exception as exc:  # noqa: BLE001 - checked by the test
        out["error"] = exc
        dep.scan.add(exc)
    out["duration"] = time.monotonic() - start - 0.3  # from the stall on


def test_cell_db_blackholed(deployment: Deployment, metric: dict[str, Any]) -> None:
    _run_cell_fault(deployment, "blackhole", metric)


def test_cell_db_refused(deployment: Deployment, metric: dict[str, Any]) -> None:
    _run_cell_fault(deployment, "refuse", metric)


def test_cell_db_stalled_mid_query(deployment: Deployment, metric: dict[str, Any]) -> None:
    _run_cell_fault(deployment, "stall", metric)


def test_cell_db_restart_costs_at_most_one_error_per_connection(
    deployment: Deployment, metric: dict[str, Any]
) -> None:
    dep = deployment
    bad = dep.bad.uuid
    _warm(dep)
    # Fill the pool: several shows at once leave pooled connections behind.
    barrier = threading.Barrier(4)
    rows = dep.rows(bad)

    def burst(index: int) -> None:
        barrier.wait(timeout=10)
        for n in range(5):
            harness.show(cellrouter.get_admin_context(), rows[index * 5 + n])

    threads = [threading.Thread(target=burst, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=harness.SHOW_BOUND)
    assert not any(thread.is_alive() for thread in threads)

    # A restart while idle: the next requests succeed (pre-ping reconnects).
    idle_cut = dep.cell_proxy.drop_all()
    assert idle_cut >= 1
    start = time.monotonic()
    harness.show(dep.ctx, rows[100])
    first_show = time.monotonic() - start
    summary = harness.list_all(dep.ctx, dep.scan)
    assert not summary.partial, summary.failed
    harness.check_list(summary, dep.world)

    # A restart under load: at most one error per connection cut.
    load = Load(dep.scan, max_seconds=30.0)
    for _ in range(3):
        load.add("show", bad, _shows(dep, bad))
    load.add("list", None, _lists(dep))
    load.start()
    try:
        time.sleep(0.7)
        busy_cut = dep.cell_proxy.drop_all()
        t_cut = time.monotonic()
        time.sleep(1.5)
    finally:
        left = load.stop(timeout=harness.SHOW_BOUND + harness.MARGIN)
    errors = [c for c in load.select("show") if not c.ok]
    partial = [c for c in load.select("list") if c.ok and c.value.partial]
    after = load.select(after=t_cut + 0.5)
    metric.update(
        idle_connections_cut=idle_cut,
        first_show_after_restart_s=first_show,
        busy_connections_cut=busy_cut,
        show_errors=len(errors),
        partial_lists=len(partial),
        calls=len(load.calls),
    )
    checks = harness.Checks()
    checks.expect(left == 0, f"{left} load threads still running")
    for call in errors:
        checks.unavailable(call.error, bad, "show cut by the restart")
    for call in load.select("list"):
        if checks.expect(call.ok, f"list raised {call.error!r}", key="list raised"):
            problem = harness.list_problem(call.value, dep.world)
            checks.expect(problem is None, f"list: {problem}", key="list rows")
    checks.expect(
        len(errors) + len(partial) <= busy_cut,
        f"{len(errors)} failed shows, {len(partial)} partial lists, {busy_cut} connections cut",
    )
    checks.expect(after, "no calls after the restart")
    for call in after:
        checks.expect(
            call.ok and not getattr(call.value, "partial", False),
            f"a {call.op} 0.5 s after the restart failed: {call.error!r}",
            key=f"after {call.op}",
        )
    checks.done()


def test_short_caller_timeouts_do_not_poison_health(
    deployment: Deployment, metric: dict[str, Any]
) -> None:
    dep = deployment
    _warm(dep)

    def slow_count(cctx: Any) -> int:
        time.sleep(0.05)
        return harness.count_instances(cctx)

    timed_out = 0
    short_partial = 0
    normal_durations = []
    for _ in range(5):
        start = time.monotonic()
        short = harness.list_all(dep.ctx, dep.scan, timeout=0.01)
        assert time.monotonic() - start <= 0.01 + harness.FAST
        harness.check_list(short, dep.world)
        short_partial += short.partial
        results = cellrouter.scatter_gather_cells(dep.ctx, dep.cells, 0.01, slow_count)
        timed_out += sum(value is cellrouter.did_not_respond_sentinel for value in results.values())

        dep.scan.add_health()
        down = [h for h in cellrouter.cell_health().values() if not h.up]
        assert not down, f"a caller's own 0.01 s timeout marked cells down: {down}"
        start = time.monotonic()
        normal = harness.list_all(dep.ctx, dep.scan)
        normal_durations.append(time.monotonic() - start)
        assert not normal.partial, normal.failed
        harness.check_list(normal, dep.world)
        for cell in dep.cells:
            harness.show(dep.ctx, dep.rows(cell.uuid)[3])

    time.sleep(0.3)  # the stragglers finish late: still nobody is marked down
    dep.scan.add_health()
    assert all(h.up for h in cellrouter.cell_health().values())
    scattered = cellrouter.scatter_gather_all_cells(dep.ctx, harness.count_instances)
    assert not any(cellrouter.is_cell_failure(v) for v in scattered.values())
    metric.update(
        short_lists_partial=short_partial,
        short_scatter_cells_timed_out=timed_out,
        normal_list_max_s=max(normal_durations),
    )
    assert timed_out > 0, "the 0.01 s scatters never timed out: nothing was tested"
    assert max(normal_durations) <= harness.FAST
