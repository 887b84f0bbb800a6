"""A TCP proxy with switchable faults, for the "a failing cell hurts only itself" tests.

The proxy runs its own asyncio event loop in its own thread and listens on
127.0.0.1 (a port the OS picked). Every accepted connection is piped to the
target ``(host, port)``. The test thread switches the mode at any time:

``forward``    pipe both ways (paused pipes resume; connections accepted while
               not forwarding, which never reached the target, are reset);
``refuse``     stop listening (new connections get ECONNREFUSED; Linux keeps the
               port), cut every existing connection;
``blackhole``  new connections are accepted and read, never forwarded nor
               answered; existing ones stop forwarding in both directions;
``stall``      existing connections stop forwarding server -> client (mid-stream:
               requests still reach the server, its answers are held); new ones
               are accepted and never answered.

:meth:`TcpProxy.drop_all` cuts every current connection at once (a server
restart) and keeps the mode. :meth:`TcpProxy.close` stops everything it started.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MODES", "TcpProxy"]

MODES = ("forward", "refuse", "blackhole", "stall")
T = TypeVar("T")

_BUFFER_LIMIT = 4 * 1024 * 1024  # held bytes per direction before the source is paused
_CALL_TIMEOUT = 10.0  # seconds the test thread waits for the proxy's loop
_MAX_ACCEPTS = 100_000  # connections one accept loop takes before it gives up


class _Side(asyncio.Protocol):
    """One socket of a piped connection: the client's or the target's."""

    def __init__(self, conn: _Conn, upstream: bool) -> None:
        self.conn = conn
        self.upstream = upstream
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.conn.received(self.upstream, data)

    def eof_received(self) -> bool:
        self.conn.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.close()

    def _other(self) -> Any:
        other = self.conn.client if self.upstream else self.conn.target
        return other.transport if other is not None else None

    def pause_writing(self) -> None:  # the other side reads no faster than this one writes
        if (other := self._other()) is not None:
            other.pause_reading()

    def resume_writing(self) -> None:
        if (other := self._other()) is not None:
            other.resume_reading()


class _Conn:
    """An accepted connection and, unless it is held, its connection to the target."""

    def __init__(self, proxy: TcpProxy, held: bool) -> None:
        self.proxy = proxy
        self.held = held  # accepted while not forwarding: never connected to the target
        self.client = _Side(self, upstream=False)
        self.target: _Side | None = None
        self.open = {False: True, True: True}  # direction (from upstream?) -> forwarding
        self.pending: dict[bool, list[bytes]] = {False: [], True: []}
        self.closed = False

    def _ends(self, from_upstream: bool) -> tuple[Any, Any]:
        """(source transport, destination transport) of a direction (None: not connected)."""
        source, dest = (self.target, self.client) if from_upstream else (self.client, self.target)
        return (
            source.transport if source is not None else None,
            dest.transport if dest is not None else None,
        )

    def received(self, from_upstream: bool, data: bytes) -> None:
        if self.held:
            return  # a black hole: read, never forwarded nor answered
        source, dest = self._ends(from_upstream)
        if self.open[from_upstream] and dest is not None:
            dest.write(data)
            return
        pending = self.pending[from_upstream]
        pending.append(data)
        if source is not None and sum(map(len, pending)) > _BUFFER_LIMIT:
            source.pause_reading()

    def set_open(self, from_upstream: bool, is_open: bool) -> None:
        self.open[from_upstream] = is_open
        source, dest = self._ends(from_upstream)
        if not is_open or self.closed or dest is None:
            return
        data, self.pending[from_upstream] = self.pending[from_upstream], []
        for chunk in data:
            dest.write(chunk)
        if source is not None:
            source.resume_reading()

    def close(self) -> None:
        """Cut both sides at once (RST, like a crashed peer); idempotent."""
        if self.closed:
            return
        self.closed = True
        self.proxy._conns.discard(self)
        for transport in self._ends(False):
            if transport is not None:
                transport.abort()


class TcpProxy:
    """``with TcpProxy(host, port) as proxy:`` a switchable faulty path to ``(host, port)``."""

    def __init__(self, target_host: str, target_port: int, mode: str = "forward") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.target = (target_host, int(target_port))
        self.host = "127.0.0.1"
        self.mode = mode
        self.accepted = 0  # connections accepted so far
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._accepting: asyncio.Task[None] | None = None
        # Bind the port explicitly, not as 0: a listening socket shut down for
        # "refuse" then keeps its port and can listen on it again.
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            self.port: int = probe.getsockname()[1]
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self._listening = True
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._thread.daemon = True
        self._thread.start()
        try:
            self._call(self._apply_mode, mode)
        except BaseException:
            self.close()
            raise

    # -- the test thread's side ------------------------------------------------------

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the proxy's loop and wait (bounded) for its result."""

        async def run() -> T:
            return fn(*args)

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout=_CALL_TIMEOUT)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def active(self) -> int:
        """Connections currently open through (or held by) the proxy."""
        return len(self._conns)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self._call(self._apply_mode, mode)

    def forward(self) -> None:
        self.set_mode("forward")

    def refuse(self) -> None:
        self.set_mode("refuse")

    def blackhole(self) -> None:
        self.set_mode("blackhole")

    def stall(self) -> None:
        self.set_mode("stall")

    def drop_all(self) -> int:
        """Cut every current connection (like a server restart); returns how many."""
        return self._call(self._drop_all)

    def close(self) -> None:
        """Stop listening, cut every connection, stop the loop and join its thread."""
        if self._loop.is_closed():
            return
        try:
            if self._thread.is_alive():
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
                future.result(timeout=_CALL_TIMEOUT)
        finally:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=_CALL_TIMEOUT)
            self._sock.close()
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        target = f"{self.target[0]}:{self.target[1]}"
        return f"TcpProxy({self.host}:{self.port} -> {target}, {self.mode})"

    # -- the loop's side ---------------------------------------------------------------

    def _apply_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "refuse":
            if self._accepting is not None:
                self._accepting.cancel()
                self._accepting = None
            if self._listening:
                self._sock.shutdown(socket.SHUT_RDWR)  # Linux: stop listening, keep the port
                self._listening = False
            self._drop_all()
            return
        if not self._listening:
            self._sock.listen(128)
            self._listening = True
        if self._accepting is None:
            self._accepting = self._loop.create_task(self._accept_loop())
        for conn in list(self._conns):
            if conn.held:
                if mode == "forward":
                    conn.close()  # it never reached the target: reset it
                continue
            conn.set_open(False, mode in ("forward", "stall"))
            conn.set_open(True, mode == "forward")

    def _drop_all(self) -> int:
        conns = list(self._conns)
        for conn in conns:
            conn.close()
        return len(conns)

    async def _shutdown(self) -> None:
        tasks = [task for task in (self._accepting, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        self._drop_all()
        self._sock.close()
        if tasks:
            await asyncio.wait(tasks, timeout=_CALL_TIMEOUT)
        await asyncio.sleep(0)  # the aborted transports report connection_lost

    async def _accept_loop(self) -> None:
        for _ in range(_MAX_ACCEPTS):
            try:
                sock, _ = await self._loop.sock_accept(self._sock)
            except OSError:
                return  # the socket was shut down or closed
            self.accepted += 1
            task = self._loop.create_task(self._serve(sock, held=self.mode != "forward"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, sock: socket.socket, held: bool) -> None:
        conn = _Conn(self, held)
        self._conns.add(conn)

        def target_side() -> _Side:
            conn.target = _Side(conn, upstream=True)
            return conn.target

        try:
            await self._loop.connect_accepted_socket(lambda: conn.client, sock)
            if held:
                return
            transport, _ = await asyncio.wait_for(
                self._loop.create_connection(target_side, *self.target), timeout=_CALL_TIMEOUT
            )
        except (TimeoutError, OSError):
            conn.close()
            sock.close()
            return
        except asyncio.CancelledError:
            conn.close()
            sock.close()
            raise
        if conn.closed:  # cut while it was connecting
            transport.abort()
            return
        conn.set_open(False, self.mode in ("forward", "stall"))
        conn.set_open(True, self.mode == "forward")
