"""Compute-like RPC endpoints and services for the messaging tests (fake:// and RabbitMQ)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from cellrouter import messaging, routing


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
