"""RPC isolation and routing on a real RabbitMQ: one vhost per cell.

Two cells, each with its own vhost, each running an RPC server for compute host
``host1``: casts and calls built for one cell reach only that cell's server,
directly and routed by instance uuid (SQLite API and cell databases). Vhosts are
created for the session (``rabbitmqctl``, root) and deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
from oslo_config import cfg
from rpc_services import Deployment, Recorder, RoutedRPCBehaviour, Services

import cellrouter.conf
from cellrouter import messaging
from cellrouter.cells import registry, routing
from cellrouter.db import migration
from cellrouter.url import format_url, url_parts

pytestmark = pytest.mark.functional

WAIT = 30.0  # generous upper bound for "eventually"; never asserted as a latency


@pytest.fixture(scope="session")
def cell_urls() -> Iterator[dict[str, str]]:
    """``{"cell1": url, "cell2": url}``: one fresh vhost per cell, deleted at the end."""
    servers.require_rabbitmq(vhosts=True)
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    names = {cell: f"cellrouter_test_{cell}_{suffix}" for cell in ("cell1", "cell2")}
    urls: dict[str, str] = {}
    try:
        for cell, vhost in names.items():
            urls[cell] = servers.create_rabbitmq_vhost(vhost)
        yield urls
    finally:
        for vhost in names.values():
            servers.delete_rabbitmq_vhost(vhost)


def _vhost(url: str) -> str:
    return url.split("?")[0].rsplit("/", 1)[1]


@pytest.fixture
def host1_in_both(cell_urls: dict[str, str]) -> Iterator[tuple[Services, Recorder, Recorder]]:
    """host1 serving in cell1 and in cell2."""
    services = Services()
    try:
        ep1, ep2 = Recorder("cell1", WAIT), Recorder("cell2", WAIT)
        services.serve(cell_urls["cell1"], "host1", ep1)
        services.serve(cell_urls["cell2"], "host1", ep2)
        yield services, ep1, ep2
    finally:
        services.close()


# -- messaging only -------------------------------------------------------------------


def test_cast_reaches_only_its_cell(
    cell_urls: dict[str, str], host1_in_both: tuple[Services, Recorder, Recorder]
) -> None:
    services, ep1, ep2 = host1_in_both
    for cell, marker in (("cell1", "for-cell1"), ("cell2", "for-cell2")):
        url = cell_urls[cell]
        client = messaging.get_rpc_client(
            services.transport(url), url, *routing.compute_topic("host1")
        )
        client.cast({}, "poke", marker=marker)
    assert ep1.wait_for(lambda got: len(got) >= 1)
    assert ep2.wait_for(lambda got: len(got) >= 1)
    assert ep1.received == [("poke", "for-cell1")]
    assert ep2.received == [("poke", "for-cell2")]
    for cell, url in cell_urls.items():
        vhost = _vhost(url)
        assert messaging.exchange_for(url) == f"cellrouter.{vhost}"
        assert f"cellrouter.{vhost}" in servers.rabbitmq_exchanges(vhost), cell


def test_call_returns_the_endpoint_value(
    cell_urls: dict[str, str], host1_in_both: tuple[Services, Recorder, Recorder]
) -> None:
    services, ep1, ep2 = host1_in_both
    url = cell_urls["cell2"]
    transport = services.transport(url)
    client = messaging.get_rpc_client(transport, url, "compute", "host1", timeout=WAIT)
    assert client.call({}, "echo", value=42) == ["cell2", 42, None]
    assert ep1.received == []


def test_call_to_missing_server_times_out(
    cell_urls: dict[str, str], host1_in_both: tuple[Services, Recorder, Recorder]
) -> None:
    services, ep1, ep2 = host1_in_both
    url = cell_urls["cell1"]
    client = messaging.get_rpc_client(
        services.transport(url), url, "compute", "no-such-host", timeout=1
    )
    with pytest.raises(messaging.MessagingTimeout):
        client.call({}, "echo", value=1)
    assert ep1.received == [] and ep2.received == []


# -- end to end: routing by instance uuid ---------------------------------------------


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def api_conf(tmp_path: Path) -> Iterator[cfg.ConfigOpts]:
    """cellrouter.CONF with a migrated SQLite API database; reset (pools too) afterwards."""
    conf = cellrouter.conf.setup([], default_config_files=[])
    conf.clear_override("connection", group="database")
    conf.clear_override("transport_url")
    api_url = _sqlite(tmp_path / "api.db")
    migration.sync("api", api_url)
    conf.set_override("connection", api_url, group="api_database")
    try:
        yield conf
    finally:
        registry.reset()  # releases the API side's cell transports too
        conf.reset()
        format_url.cache_clear()
        url_parts.cache_clear()
        cellrouter.conf.setup([], default_config_files=[])


@pytest.fixture
def deployment(
    api_conf: cfg.ConfigOpts,
    tmp_path: Path,
    cell_urls: dict[str, str],
    host1_in_both: tuple[Services, Recorder, Recorder],
) -> tuple[Deployment, Recorder, Recorder]:
    """API DB + cell1/cell2 on their vhosts, host1 serving in both, no instances yet."""
    _, ep1, ep2 = host1_in_both
    dep = Deployment(tmp_path)
    for name in ("cell1", "cell2"):
        dep.add_cell(name, cell_urls[name])
    return dep, ep1, ep2


class TestRoutedRPCOnRabbitMQ(RoutedRPCBehaviour):
    """One vhost per cell on the real broker."""

    wait = WAIT
