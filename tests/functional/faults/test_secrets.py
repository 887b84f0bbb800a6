"""No secret in clear text: failure scenarios with URL-hostile passwords in every URL.

The cells' MariaDB user has ``S3cr3t!p@ss`` (``S3cr3t%21p%40ss`` in URLs), the
API database's ``pw/with?odd#chars`` (``pw%2Fwith%3Fodd%23chars``), the broker
URLs carry ``p%40ss`` (``p@ss``) and ``p%2540ss`` (a password that looks
encoded). Every log record (cellrouter and oslo at DEBUG), every exception's
str(), repr() and traceback, every CellHealth repr and list failure reason the
scenarios produce is scanned; the same scan runs after every test of the
suite (see ``conftest.leak_scan``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

import cellrouter
from cellrouter import exception
from cellrouter.across import health
from faults import harness
from faults.harness import Deployment


def _attempt(scan: harness.LeakScan, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; its result or exception goes to the scan (and is returned)."""
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every outcome is scanned
        scan.add(exc)
        return exc
    scan.add(value)
    return value


def test_no_secrets_in_errors_logs_or_health(
    deployment: Deployment,
    leak_scan: harness.LeakScan,
    caplog: pytest.LogCaptureFixture,
    metric: dict[str, Any],
) -> None:
    dep, scan = deployment, leak_scan
    ctx = dep.ctx
    bad = dep.bad
    # The secrets really are in the URLs in use.
    assert "S3cr3t%21p%40ss" in bad.database_connection
    assert "pw%2Fwith%3Fodd%23chars" in dep.conf.api_database.connection
    assert "p%40ss" in bad.transport_url
    # The scan does see them in clear text (the raw URLs, unmasked).
    probe = harness.LeakScan()
    for url in (bad.database_connection, dep.conf.api_database.connection, bad.transport_url):
        probe.add_text(url)
    assert len(probe.leaks()) >= 3
    outcomes: dict[str, Any] = {}

    def scenario(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        outcomes[name] = _attempt(scan, fn, *args, **kwargs)
        scan.add_health()
        return outcomes[name]

    instance = dep.rows(bad.uuid)[0]
    scenario("warm show", harness.show, ctx, instance)
    scan.add(dep.cells)

    # The cell's database blackholed: timeouts; then refused: connection errors.
    dep.cell_proxy.blackhole()
    scenario("blackholed show", harness.show, ctx, instance)
    scenario("blackholed list", harness.list_all, ctx, scan)
    health.reset()
    dep.cell_proxy.refuse()
    scenario("refused show", harness.show, ctx, instance, route=True)
    scenario("refused list", harness.list_all, ctx, scan, down_cell_records=True)
    scenario("refused scatter", harness.scatter_counts, ctx, scan)
    dep.cell_proxy.forward()

    # A wrong password (one that looks percent-encoded): the server refuses the login.
    health.reset()
    wrong = dep.world.cell_url(2).replace(
        harness.enc(harness.CELL_DB_PASSWORD), harness.enc(harness.LITERAL_PERCENT_PASSWORD)
    )
    assert "p%2540ss" in wrong
    moved = bad.update(ctx, database_connection=wrong)
    scan.add(moved)
    scenario("wrong password show", harness.show, ctx, instance)
    scenario("wrong password list", harness.list_all, ctx, scan)
    dep.remap()

    # Invalid URLs are refused with a masked message.
    for name, db_url, mq_url in (
        ("bad port", "mysql+pymysql://crf:S3cr3t%21p%40ss@127.0.0.1:notaport/db", "none:///"),
        ("bad host", "mysql+pymysql://crf:pw%2Fwith%3Fodd%23chars@[::1/db", "none:///"),
        ("bad driver", dep.world.cell_url(0), "bogus://crf:p%40ss@127.0.0.1:5672/v"),
        ("bad transport", dep.world.cell_url(0), "rabbit://crf:p%2540ss@[127.0.0.1:5672/v"),
    ):
        created = scenario(
            name,
            cellrouter.CellMapping.create,
            ctx,
            database_connection=db_url,
            transport_url=mq_url,
        )
        if isinstance(created, cellrouter.CellMapping):  # not refused: do not leave it mapped
            created.destroy(ctx)

    # The broker refused: casts fail after rpc_retry reconnects.
    broker = dep.proxy(*harness.rabbit_target())
    broker.refuse()
    dep.transport_urls[2] = harness.rabbit_user_url(
        "crf_none", "crf_mq", harness.MQ_PASSWORD, port=broker.port
    )
    dep.transport_urls[1] = harness.rabbit_user_url(
        "crf_none", "crf_mq", harness.LITERAL_PERCENT_PASSWORD, port=broker.port
    )
    dep.remap()
    for index in (1, 2):
        cell = dep.cells[index]
        start = time.monotonic()
        error = scenario(
            f"refused cast {index}",
            cellrouter.cast_instance,
            ctx,
            dep.rows(cell.uuid)[0],
            "poke",
            marker="x",
        )
        metric[f"refused_cast_{index}_s"] = time.monotonic() - start
        assert isinstance(error, exception.CellUnavailable), error

    # The API database refused, then blackholed.
    api = dep.proxy_api()
    api.refuse()
    scenario("API refused show", harness.show, ctx, instance)
    scenario("API refused list", harness.list_all, ctx, scan)
    api.blackhole()
    scenario("API blackholed show", harness.show, ctx, instance, route=True)
    api.forward()

    # The configuration, as a service logs it at startup.
    dep.conf.set_override("connection", dep.world.cell_url(1), group="database")
    dep.conf.set_override("transport_url", dep.transport_urls[2])
    dep.conf.log_opt_values(logging.getLogger("cellrouter.faults"), logging.DEBUG)
    dep.conf.clear_override("connection", group="database")
    dep.conf.clear_override("transport_url")

    for name in ("blackholed show", "refused show", "API refused show", "API blackholed show"):
        assert isinstance(outcomes[name], exception.Unavailable), (name, outcomes[name])
    for name in ("bad port", "bad host"):
        assert isinstance(outcomes[name], exception.InvalidURL), (name, outcomes[name])

    scan.add_records(caplog.get_records("setup") + caplog.records)
    leaks = scan.leaks()
    metric.update(
        scanned_texts=len(scan.texts),
        suite_scanned_texts=harness.SESSION["scanned"] + len(scan.texts),
        log_records=len(caplog.records),
        leaks=len(leaks),
    )
    assert not leaks, f"{len(leaks)} secret(s) in clear text:\n" + "\n".join(leaks[:10])
