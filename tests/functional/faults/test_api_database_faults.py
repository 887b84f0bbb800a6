"""A blackholed API database: shows, lists and scatters fail with ApiDatabaseUnavailable
within the bound, and work again once it answers, without a restart."""

from __future__ import annotations

import time
from typing import Any

import cellrouter
from cellrouter import exception
from cellrouter.index.cached_index import CACHED_INDEX
from faults import harness
from faults.harness import Deployment, Load


def test_api_db_blackholed(deployment: Deployment, metric: dict[str, Any]) -> None:
    dep = deployment
    api_proxy = dep.proxy_api()
    everywhere = [uuid for cell in dep.cells for uuid in dep.rows(cell.uuid)[:50]]

    def shows(offset: int) -> Any:
        ctx = cellrouter.get_admin_context()
        return lambda i: harness.show(
            ctx, everywhere[(i * 11 + offset) % len(everywhere)], route=i % 2 == 1
        )

    load = Load(dep.scan, max_seconds=60.0)
    for offset in range(4):
        load.add("show", None, shows(offset))
    for _ in range(2):
        ctx = cellrouter.get_admin_context()
        load.add("list", None, lambda i, ctx=ctx: harness.list_all(ctx, dep.scan))
        ctx = cellrouter.get_admin_context()
        load.add("scatter", None, lambda i, ctx=ctx: harness.scatter_counts(ctx, dep.scan))
    summary = harness.list_all(dep.ctx)
    harness.check_list(summary, dep.world)
    load.start()
    try:
        time.sleep(1.5)
        t0 = time.monotonic()
        api_proxy.blackhole()
        # The cached cell list (a few seconds old at most) would let lists run on:
        # drop it, as its expiry would, so every call needs the API database now.
        CACHED_INDEX.reset()
        time.sleep(harness.SHOW_BOUND + 1.0)
        stuck = load.stuck(older_than=harness.SHOW_BOUND + 1.0)
        time.sleep(0.5)
        t1 = time.monotonic()
        api_proxy.forward()
        recovery, last = harness.poll(
            lambda: harness.show(dep.ctx, everywhere[5]), lambda _: True, harness.SHOW_BOUND
        )
        list_recovery, last_list = harness.poll(
            lambda: harness.list_all(dep.ctx, dep.scan),
            lambda s: not s.partial,
            harness.SHOW_BOUND,
        )
        time.sleep(0.5)
    finally:
        left = load.stop(timeout=harness.SHOW_BOUND + harness.MARGIN)
    for value in (last, last_list):
        if isinstance(value, BaseException):
            dep.scan.add(value)

    checks = harness.Checks()
    checks.expect(left == 0, f"{left} load threads still running after the stop")
    checks.expect(stuck == 0, f"{stuck} threads still inside a call 1 s after the bound")
    for call in load.select(before=t0):
        checks.expect(call.ok, f"{call.op} failed before the fault: {call.error!r}", key="before")
    during = load.select(after=t0 + harness.EDGE, before=t1)
    for op in ("show", "list", "scatter"):
        checks.expect([c for c in during if c.op == op], f"no {op} during the fault")
    for call in during:
        checks.expect(not call.ok, f"a {call.op} succeeded without the API database", call.op)
    for call in load.calls:
        if not call.ok:
            checks.unavailable(
                call.error,
                None,
                f"{call.op} without the API database",
                cls=exception.ApiDatabaseUnavailable,
            )
        checks.expect(
            call.duration <= harness.SHOW_BOUND,
            f"a {call.op} took {call.duration:.2f}s > {harness.SHOW_BOUND}s ({call.error!r})",
            key=f"{call.op} over its bound",
        )
        if call.ok and call.op == "list":
            problem = harness.list_problem(call.value, dep.world)
            checks.expect(problem is None, f"list: {problem}", key="list rows")
    checks.expect(recovery < float("inf"), f"shows still failing after recovery: {last!r}")
    checks.expect(list_recovery < float("inf"), f"lists still failing: {last_list!r}")
    for call in load.select(after=t1 + max(recovery, list_recovery) + harness.EDGE):
        checks.expect(call.ok, f"a {call.op} failed after recovery: {call.error!r}", "after")

    failed = [c for c in load.calls if not c.ok]
    first = min(failed, key=lambda c: c.end, default=None)
    by_op = {
        op: max((c.duration for c in failed if c.op == op), default=float("nan"))
        for op in ("show", "list", "scatter")
    }
    metric.update(
        calls=len(load.calls),
        api_first_error_s=first.duration if first else float("nan"),
        api_show_error_max_s=by_op["show"],
        api_show_error_p50_s=harness.median([c.duration for c in failed if c.op == "show"]),
        api_list_error_max_s=by_op["list"],
        api_scatter_error_max_s=by_op["scatter"],
        stuck_threads_1s_after_bound=stuck,
        threads_left=left,
        show_ok_after_recovery_s=recovery,
        list_complete_after_recovery_s=list_recovery,
    )
    checks.done()
