"""A blackholed, then refused, broker: casts to its cell return or fail with
CellUnavailable within the bound, casts to other cells go on, and the cell's
casts are delivered again once the broker answers, without a restart.

One vhost per cell on the real RabbitMQ; the failing cell's transport URL goes
through the fault proxy; its compute service consumes directly from RabbitMQ.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import pytest
import servers
from rpc_services import Recorder, Services  # tests/ is on sys.path (the rootdir conftest)

import cellrouter
from faults import harness
from faults.harness import Deployment, Load


@pytest.fixture
def broker_user() -> Iterator[tuple[str, list[str]]]:
    """(user, [vhost per cell]): a RabbitMQ user with a URL-hostile password; all deleted after."""
    servers.require_rabbitmq(vhosts=True)
    suffix = f"{os.getpid()}_{uuidlib.uuid4().hex[:6]}"
    user = f"crf_mq_{suffix}"
    vhosts = [f"crf_fault_c{i}_{suffix}" for i in (0, 2)]
    made: list[str] = []
    servers._rabbitmqctl("add_user", user, harness.MQ_PASSWORD)
    try:
        for vhost in vhosts:
            servers.create_rabbitmq_vhost(vhost)
            made.append(vhost)
            servers._rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield user, vhosts
    finally:
        for vhost in made:
            servers.delete_rabbitmq_vhost(vhost)
        servers._rabbitmqctl("delete_user", user)


def test_broker_blackholed_then_refused(
    broker_user: tuple[str, list[str]], deployment: Deployment, metric: dict[str, Any]
) -> None:
    dep = deployment
    user, (vhost_good, vhost_bad) = broker_user
    broker_proxy = dep.proxy(*harness.rabbit_target())
    direct_good = harness.rabbit_user_url(vhost_good, user, harness.MQ_PASSWORD)
    direct_bad = harness.rabbit_user_url(vhost_bad, user, harness.MQ_PASSWORD)
    dep.transport_urls[0] = direct_good
    dep.transport_urls[2] = harness.rabbit_user_url(
        vhost_bad, user, harness.MQ_PASSWORD, port=broker_proxy.port
    )
    dep.remap()
    good, bad = dep.cells[0], dep.bad

    services = Services()
    dep.on_close(services.close)
    received = {
        good.uuid: Recorder("good", harness.CAST_BOUND),
        bad.uuid: Recorder("bad", harness.CAST_BOUND),
    }
    services.serve(direct_good, dep.world.hosts[good.uuid], received[good.uuid])
    services.serve(direct_bad, dep.world.hosts[bad.uuid], received[bad.uuid])

    markers = itertools.count()

    def casts(cell_uuid: str) -> Any:
        ctx = cellrouter.get_admin_context()
        rows = dep.rows(cell_uuid)

        def call(i: int) -> str:
            marker = f"m{next(markers)}"
            cellrouter.cast_instance(ctx, rows[i % len(rows)], "poke", marker=marker)
            return marker

        return call

    # Before: casts reach both cells.
    for cell in (good, bad):
        marker = casts(cell.uuid)(0)
        assert received[cell.uuid].wait_for(lambda got, m=marker: ("poke", m) in got)

    load = Load(dep.scan, max_seconds=90.0, pause=0.02)
    for cell in (good, good, bad, bad):
        load.add("cast", cell.uuid, casts(cell.uuid))
    load.start()
    phases: dict[str, tuple[float, float]] = {}
    try:
        time.sleep(1.0)
        # Blackhole long enough that a cast hanging past its bound shows.
        start = time.monotonic()
        broker_proxy.blackhole()
        time.sleep(harness.CAST_BOUND + 1.0)
        stuck = load.stuck(older_than=harness.CAST_BOUND + 1.0)
        phases["blackhole"] = (start, time.monotonic())
        start = time.monotonic()
        broker_proxy.refuse()
        time.sleep(3.0)
        phases["refuse"] = (start, time.monotonic())
        start = time.monotonic()
        broker_proxy.blackhole()  # new connections now: accepted, never answered
        time.sleep(6.0)
        phases["blackhole_new"] = (start, time.monotonic())
        t_forward = time.monotonic()
        broker_proxy.forward()
        ctx = cellrouter.get_admin_context()
        recovery_marker = "recovered"

        def recovered_cast() -> bool:
            cellrouter.cast_instance(ctx, dep.rows(bad.uuid)[7], "poke", marker=recovery_marker)
            return True

        recovery, last = harness.poll(
            recovered_cast, lambda ok: ok, harness.CELL_DOWN_INTERVAL + harness.CAST_BOUND
        )
        delivered = received[bad.uuid].wait_for(lambda got: ("poke", recovery_marker) in got)
        delivery = time.monotonic() - t_forward
        time.sleep(1.0)
    finally:
        left = load.stop(timeout=harness.CAST_BOUND + harness.MARGIN)
    if isinstance(last, BaseException):
        dep.scan.add(last)
    dep.scan.add_health()

    checks = harness.Checks()
    checks.expect(left == 0, f"{left} cast threads still running after the stop")
    checks.expect(stuck == 0, f"{stuck} threads still inside a cast 1 s after the bound")
    for call in load.calls:
        checks.expect(
            call.duration <= harness.CAST_BOUND,
            f"a cast took {call.duration:.2f}s > {harness.CAST_BOUND}s ({call.error!r})",
            key="cast over its bound",
        )
        if call.target == bad.uuid and not call.ok:
            # A cast that timed out has no driver error to chain: no __cause__ check.
            checks.unavailable(call.error, bad.uuid, "cast to the failing cell", cause=False)
    good_casts = load.select("cast", good.uuid)
    for call in good_casts:
        checks.expect(call.ok, f"a cast to a healthy cell failed: {call.error!r}", key="good")
    good_p99 = harness.percentile([c.duration for c in good_casts], 99)
    checks.expect(good_p99 < harness.GOOD_P99, f"healthy cell's cast p99 {good_p99:.3f}s")
    sent_good = {c.value for c in good_casts if c.ok}
    checks.expect(
        received[good.uuid].wait_for(lambda got: sent_good <= {m for _, m in got}),
        "casts to the healthy cell were lost",
    )
    refused = load.select("cast", bad.uuid, *phases["refuse"])
    checks.expect(refused, "no cast to the failing cell while its broker refused")
    checks.expect(
        any(not c.ok for c in refused), "no cast to the failing cell failed while it refused"
    )
    checks.expect(recovery < float("inf"), f"casts still failing after recovery: {last!r}")
    checks.expect(delivered, "the cast after recovery was not delivered")
    after = load.select("cast", bad.uuid, after=t_forward + recovery + harness.EDGE)
    for call in after:
        checks.expect(call.ok, f"a cast failed after recovery: {call.error!r}", key="after")

    def errors(phase: str) -> list[float]:
        return [c.duration for c in load.select("cast", bad.uuid, *phases[phase]) if not c.ok]

    blackholed = errors("blackhole") + errors("blackhole_new")
    metric.update(
        casts=len(load.calls),
        bad_casts_failed=sum(1 for c in load.select("cast", bad.uuid) if not c.ok),
        cast_blackhole_error_max_s=max(blackholed, default=float("nan")),
        cast_blackhole_error_p50_s=harness.median(blackholed),
        cast_blackhole_ok_max_s=max(
            (c.duration for c in load.select("cast", bad.uuid, *phases["blackhole"]) if c.ok),
            default=float("nan"),
        ),
        cast_refused_error_max_s=max(errors("refuse"), default=float("nan")),
        good_cast_p99_s=good_p99,
        stuck_threads_1s_after_bound=stuck,
        threads_left=left,
        cast_ok_after_recovery_s=recovery,
        delivered_after_recovery_s=delivery,
    )
    checks.done()
