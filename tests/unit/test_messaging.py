"""cellrouter.messaging on oslo.messaging's in-memory ``fake://`` driver.

Two fake cells (``fake://cell1/`` and ``fake://cell2/``) each run an RPC server
for compute host ``host1``; the fake driver ignores virtual hosts and shares
one exchange table per process, so only the per-cell exchange keeps them
apart. The fake listener polls every 50 ms: no latency is asserted anywhere.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg
from rpc_services import Deployment, Recorder, RoutedRPCBehaviour, Services

import cellrouter.conf
from cellrouter import exception, messaging
from cellrouter.cells import routing

CELL1_URL = "fake://cell1/"
CELL2_URL = "fake://cell2/"
WAIT = 10.0  # generous upper bound for "eventually"; never asserted as a latency


@pytest.fixture
def cells() -> Iterator[Services]:
    c = Services()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def two_cells(cells: Services) -> tuple[Services, Recorder, Recorder]:
    """host1 serving in cell1 and in cell2."""
    ep1, ep2 = Recorder("cell1"), Recorder("cell2")
    cells.serve(CELL1_URL, "host1", ep1)
    cells.serve(CELL2_URL, "host1", ep2)
    return cells, ep1, ep2


# -- transports -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["none:///", "NONE:///", "none://"])
def test_none_url_has_no_transport(url: str) -> None:
    assert messaging.create_transport(url) is None
    messaging.cleanup_transport(None)  # accepted, nothing to do


@pytest.mark.parametrize(
    "url, reason",
    [
        ("nosuch://admin:s3cret@mq1/cell1", "no transport driver 'nosuch'"),
        ("rabbit://admin:s3cret@mq1/cell1?bogus_option=1", "unknown driver option 'bogus_option'"),
        ("rabbit://admin:s3cret@mq1/cell1?heartbeat_timeout_threshold=x", "ValueError"),
        ("rabbit://admin:s3cret@mq1:notaport/cell1", "ValueError"),
        ("rabbit://admin:s3cret@mq1/cell1?heartbeat_rate=x&password=s3cret", "ValueError"),
    ],
)
def test_invalid_url_is_masked(url: str, reason: str) -> None:
    with pytest.raises(exception.InvalidURL) as info:
        messaging.create_transport(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert "admin:****@mq1" in message
    assert reason in message
    assert message.startswith("Invalid transport URL ")
    # no chained exception carrying the clear-text URL
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("url", ["", "no-scheme-here", "://mq1/"])
def test_url_without_driver_is_invalid(url: str) -> None:
    with pytest.raises(exception.InvalidURL):
        messaging.create_transport(url)


def test_rabbit_driver_options_come_from_the_url_query() -> None:
    # Nothing connects until first use: no broker is needed for this.
    transport = messaging.create_transport(
        "rabbit://guest:guest@127.0.0.1:1/cellx?heartbeat_timeout_threshold=0&heartbeat_rate=3"
    )
    assert transport is not None
    try:
        rabbit = transport.conf.oslo_messaging_rabbit
        assert rabbit.heartbeat_timeout_threshold == 0
        assert rabbit.heartbeat_rate == 3
    finally:
        messaging.cleanup_transport(transport)
    # ... and never leak into the private conf itself
    assert messaging.messaging_conf().oslo_messaging_rabbit.heartbeat_timeout_threshold == 60


def test_private_conf_holds_every_option_oslo_messaging_reads() -> None:
    conf = messaging.messaging_conf()
    assert conf is not cellrouter.conf.get_conf()
    assert conf.oslo_messaging_tracing.tracing_enabled is False
    assert conf.oslo_messaging_metrics.metrics_enabled is False
    assert conf.rpc_response_timeout == 60
    assert conf.executor_thread_pool_size > 0
    assert conf.oslo_messaging_notifications.driver == []
    # nothing was registered on the library's configuration
    lib = cellrouter.conf.get_conf()
    for name in ("rpc_response_timeout", "oslo_messaging_rabbit", "oslo_messaging_tracing"):
        with pytest.raises(cfg.NoSuchOptError):
            getattr(lib, name)


def test_cleanup_never_raises_and_masks(caplog: pytest.LogCaptureFixture) -> None:
    transport = messaging.create_transport("fake://admin:s3cret@cell9/")
    assert transport is not None

    def boom() -> None:
        raise RuntimeError("lost rabbit://admin:s3cret@mq9/")

    transport.cleanup = boom  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG, logger="cellrouter.messaging"):
        messaging.cleanup_transport(transport)
    assert "s3cret" not in caplog.text
    assert "fake://admin:****@cell9/" in caplog.text
    assert "rabbit://admin:****@mq9/" in caplog.text


# -- exchanges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, exchange",
    [
        ("rabbit://guest:guest@mq1:5672/", "cellrouter"),
        ("rabbit://mq1", "cellrouter"),
        ("rabbit://mq1//", "cellrouter"),  # RabbitMQ's default vhost "/"
        ("rabbit://u:p@mq1:5672/cell1", "cellrouter.cell1"),
        ("rabbit://u:p@mq1,u:p@mq2/cell1?heartbeat_timeout_threshold=0", "cellrouter.cell1"),
        ("rabbit://mq1/cellrouter_test_cell1", "cellrouter.cellrouter_test_cell1"),
        ("rabbit://mq1/a.b:c%2Fd", "cellrouter.a:2eb:3ac:2fd"),
        ("rabbit://mq1/%C3%BC", "cellrouter.:c3:bc"),
        ("fake://cell1/", "cellrouter.cell1"),
        ("fake://cell1", "cellrouter.cell1"),
        ("fake:///cell1", "cellrouter.cell1"),
        ("fake://cell1/vh", "cellrouter.cell1.vh"),
        ("fake://", "cellrouter"),
    ],
)
def test_exchange_for(url: str, exchange: str) -> None:
    assert messaging.exchange_for(url) == exchange


def test_exchange_depends_on_the_vhost_only() -> None:
    # An API service and a compute may reach one broker under different names,
    # credentials or options: they must still agree on the exchange.
    assert (
        messaging.exchange_for("rabbit://api:pw1@mq1.example:5672/c7")
        == messaging.exchange_for("rabbit://compute:pw2@10.0.0.5:5671/c7?heartbeat_rate=4")
        == messaging.exchange_for("rabbit://c:p@10.0.0.5,c:p@10.0.0.6/c7")
    )
    assert messaging.exchange_for("rabbit://mq1/c7") != messaging.exchange_for("rabbit://mq1/c8")
    # escaping is injective
    assert messaging.exchange_for("rabbit://mq1/a_b") != messaging.exchange_for("rabbit://mq1/a.b")


def test_long_vhost_gives_a_short_exchange() -> None:
    long_a = messaging.exchange_for("rabbit://mq1/" + "a" * 300 + "1")
    long_b = messaging.exchange_for("rabbit://mq1/" + "a" * 300 + "2")
    assert len(long_a) <= 255 and len(long_b) <= 255
    assert long_a != long_b


def test_exchange_for_invalid_url() -> None:
    with pytest.raises(exception.InvalidURL):
        messaging.exchange_for("no scheme u:s3cret@h")


# -- clients and servers --------------------------------------------------------------


def test_compute_topic() -> None:
    assert routing.compute_topic("host1") == ("compute", "host1")


def test_client_target_and_options(cells: Services) -> None:
    transport = cells.transport(CELL1_URL)
    client = messaging.get_rpc_client(
        transport, CELL1_URL, "compute", "host1", version="5.1", timeout=7, namespace="ns"
    )
    assert client.target.exchange == "cellrouter.cell1"
    assert (client.target.topic, client.target.server) == ("compute", "host1")
    assert (client.target.version, client.target.namespace) == ("5.1", "ns")
    assert client.timeout == 7
    with pytest.raises(exception.InvalidValue, match="exchange"):
        messaging.get_rpc_client(transport, CELL1_URL, "compute", exchange="other")
    with pytest.raises(exception.CellHasNoQueue, match="at none:/// has no message queue"):
        messaging.get_rpc_client(None, "none:///", "compute")  # type: ignore[arg-type]
    with pytest.raises(exception.CellHasNoQueue, match="no message queue"):
        messaging.get_rpc_server(None, "none:///", "compute", "host1", [])  # type: ignore[arg-type]


@pytest.mark.parametrize("executor", ["threading", None])
def test_server_without_deprecation_warning(cells: Services, executor: str | None) -> None:
    transport = cells.transport(CELL1_URL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        server = messaging.get_rpc_server(
            transport, CELL1_URL, "compute", "host1", [Recorder("cell1")], executor=executor
        )
    assert server._target.exchange == "cellrouter.cell1"  # no public accessor


def test_cast_reaches_only_its_cell(two_cells: tuple[Services, Recorder, Recorder]) -> None:
    cells, ep1, ep2 = two_cells
    for url, marker in ((CELL1_URL, "for-cell1"), (CELL2_URL, "for-cell2")):
        client = messaging.get_rpc_client(
            cells.transport(url), url, *routing.compute_topic("host1")
        )
        client.cast({}, "poke", marker=marker)
    assert ep1.wait_for(lambda got: len(got) >= 1)
    assert ep2.wait_for(lambda got: len(got) >= 1)
    assert ep1.received == [("poke", "for-cell1")]
    assert ep2.received == [("poke", "for-cell2")]


def test_call_returns_the_endpoint_value(two_cells: tuple[Services, Recorder, Recorder]) -> None:
    cells, ep1, ep2 = two_cells
    client = messaging.get_rpc_client(
        cells.transport(CELL2_URL), CELL2_URL, "compute", "host1", timeout=WAIT
    )
    assert client.call({}, "echo", value=42) == ["cell2", 42, None]
    assert ep1.received == []


def test_call_to_missing_server_times_out(two_cells: tuple[Services, Recorder, Recorder]) -> None:
    cells, ep1, ep2 = two_cells
    client = messaging.get_rpc_client(
        cells.transport(CELL1_URL), CELL1_URL, "compute", "no-such-host", timeout=0.5
    )
    with pytest.raises(messaging.MessagingTimeout):
        client.call({}, "echo", value=1)
    assert ep1.received == [] and ep2.received == []


def test_vhostless_cell_is_separate(cells: Services) -> None:
    # A same-named host in a third, vhost-less fake cell does not see cell1's traffic.
    ep_other = Recorder("other")
    cells.serve("fake://", "host1", ep_other)
    ep1 = Recorder("cell1")
    cells.serve(CELL1_URL, "host1", ep1)
    client = messaging.get_rpc_client(cells.transport(CELL1_URL), CELL1_URL, "compute", "host1")
    assert client.call({}, "echo", value="x") == ["cell1", "x", None]
    assert ep_other.received == []


# -- end to end: routing by instance uuid ---------------------------------------------
# Fixtures conf/api_db/make_cells/make_instance/admin_ctx: tests/unit/conftest.py.


@pytest.fixture
def deployment(
    api_db: str, tmp_path: Path, cells: Services
) -> tuple[Deployment, Recorder, Recorder]:
    """Two mapped SQLite cells on fake://cell1/ and fake://cell2/, host1 serving in both."""
    dep = Deployment(tmp_path)
    for name, url in (("cell1", CELL1_URL), ("cell2", CELL2_URL)):
        dep.add_cell(name, url)
    ep1, ep2 = Recorder("cell1"), Recorder("cell2")
    # each compute service knows only its own cell's transport URL
    cells.serve(CELL1_URL, "host1", ep1)
    cells.serve(CELL2_URL, "host1", ep2)
    return dep, ep1, ep2


class TestRoutedRPCOnFake(RoutedRPCBehaviour):
    """fake:// ignores virtual hosts: the per-URL exchange keeps the cells apart."""

    wait = WAIT
