"""Compute-like RPC endpoints and services for the messaging tests (fake:// and RabbitMQ)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cellrouter import exception, messaging
from cellrouter.cells import routing
from cellrouter.cells.context import RequestContext, get_admin_context
from cellrouter.db import migration
from cellrouter.db.cell_schema import instances
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping


class Recorder:
    """A compute-like endpoint that records what it got and answers calls."""

    def __init__(self, cell: str, wait: float = 10.0) -> None:
        self.cell = cell
        self.wait = wait  # generous bound for "eventually"; never asserted as a latency
        self.received: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

    def _record(self, method: str, value: Any) -> None:
        with self._cond:
            self.received.append((method, value))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[tuple[str, Any]]], bool]) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.received), timeout=self.wait)

    # RPC methods
    def poke(self, ctxt: dict[str, Any], marker: str, **kw: Any) -> None:
        self._record("poke", marker)

    def echo(self, ctxt: dict[str, Any], value: Any, **kw: Any) -> list[Any]:
        self._record("echo", value)
        return [self.cell, value, kw.get("instance_uuid")]


class Services:
    """Compute services (a transport + RPC server each) and client transports."""

    def __init__(self) -> None:
        self.transports: list[Any] = []
        self.servers: list[Any] = []

    def transport(self, url: str) -> Any:
        transport = messaging.create_transport(url)
        assert transport is not None
        self.transports.append(transport)
        return transport

    def serve(self, url: str, host: str, endpoint: Recorder) -> None:
        """A compute service on ``host`` that knows only its cell's transport URL."""
        server = messaging.get_rpc_server(
            self.transport(url), url, routing.COMPUTE_TOPIC, host, [endpoint]
        )
        server.start()  # declares its queues before returning
        self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for server in self.servers:
            server.wait()
        # A fake transport's cleanup empties the shared exchange table: do it last.
        for transport in self.transports:
            messaging.cleanup_transport(transport)


class Deployment:
    """Mapped SQLite cells whose queues are the given transport URLs."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.ctx: RequestContext = get_admin_context()
        self.cells: dict[str, CellMapping] = {}

    def add_cell(self, name: str, transport_url: str) -> CellMapping:
        db_url = f"sqlite:///{self.tmp_path / name}.db"
        migration.sync("cell", db_url)
        cell = CellMapping.create(
            self.ctx, name=name, database_connection=db_url, transport_url=transport_url
        )
        self.cells[name] = cell
        return cell

    def add_instance(self, cell: str, host: str | None) -> str:
        instance_uuid = str(uuid.uuid4())
        engine = sa.create_engine(self.cells[cell].database_connection, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(instances).values(
                        uuid=instance_uuid, project_id="p1", user_id="u1", host=host, deleted=0
                    )
                )
        finally:
            engine.dispose()
        InstanceMapping.create(
            self.ctx, instance_uuid=instance_uuid, project_id="p1", cell_mapping=self.cells[cell]
        )
        return instance_uuid


class RoutedRPCBehaviour:
    """Casts and calls routed by instance uuid land only in the instance's cell.

    A test module subclasses this and provides the ``deployment`` fixture:
    (Deployment with cell1 and cell2, host1's endpoint in cell1, in cell2).
    """

    wait = 10.0  # generous bound for "eventually"; never asserted as a latency

    def test_routed_casts_land_in_the_right_cell(
        self, deployment: tuple[Deployment, Recorder, Recorder]
    ) -> None:
        dep, ep1, ep2 = deployment
        uuid1, uuid2 = dep.add_instance("cell1", "host1"), dep.add_instance("cell2", "host1")
        route = routing.cast_instance(dep.ctx, uuid1, "poke", marker="a")
        assert (route.cell_uuid, route.host) == (dep.cells["cell1"].uuid, "host1")
        routing.cast_instance(dep.ctx, uuid2, "poke", marker="b")
        routing.cast_instance(dep.ctx, uuid1, "poke", marker="c")
        assert ep1.wait_for(lambda got: len(got) >= 2)
        assert ep2.wait_for(lambda got: len(got) >= 1)
        assert sorted(ep1.received) == [("poke", "a"), ("poke", "c")]
        assert ep2.received == [("poke", "b")]

    def test_routed_call_returns_or_times_out(
        self, deployment: tuple[Deployment, Recorder, Recorder]
    ) -> None:
        dep, ep1, ep2 = deployment
        uuid2 = dep.add_instance("cell2", "host1")
        answer = routing.call_instance(dep.ctx, uuid2, "echo", timeout=self.wait, value=7)
        assert answer == ["cell2", 7, uuid2]
        ghost = dep.add_instance("cell1", "ghost-host")
        with pytest.raises(messaging.MessagingTimeout):
            routing.call_instance(dep.ctx, ghost, "echo", timeout=1, value=8)
        assert ep1.received == [] and ep2.received == [("echo", 7)]

    def test_routing_to_a_cell_without_queue_fails(
        self, deployment: tuple[Deployment, Recorder, Recorder]
    ) -> None:
        dep, ep1, ep2 = deployment
        dep.add_cell("cell0", "none:///")
        instance_uuid = dep.add_instance("cell0", "host1")
        with pytest.raises(exception.CellRouterError, match="no message queue"):
            routing.cast_instance(dep.ctx, instance_uuid, "poke", marker="x")
        assert ep1.received == [] and ep2.received == []
