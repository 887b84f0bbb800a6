"""The fault proxy itself, against a local echo server (no database, no broker)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from faults.proxy import TcpProxy

WAIT = 5.0  # generous bound for anything that should be immediate


class EchoServer:
    """A threaded echo server on 127.0.0.1 (one thread per connection, all joined on close)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        self.received = 0
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        for _ in range(10_000):  # 0.2 s each at most: ends with the test
            if self.stop.is_set():
                return
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _echo(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        for _ in range(100_000):
            if self.stop.is_set():
                return
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.received += len(data)
            try:
                conn.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for conn in self.conns:
            conn.close()
        for thread in [self.acceptor, *self.threads]:
            thread.join(timeout=WAIT)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        yield proxy


def _connect(proxy: TcpProxy, timeout: float = 1.0) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=timeout)


def _roundtrip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    data = b""
    while len(data) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_forward_and_refuse(proxy: TcpProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"
        proxy.refuse()
        with pytest.raises(OSError):  # cut: reset or EOF
            if _roundtrip(sock) != b"ping":
                raise ConnectionResetError("cut")
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
    proxy.forward()
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"
    assert proxy.accepted == 2


def test_blackhole_then_forward_resumes_existing_connections(
    proxy: TcpProxy, echo: EchoServer
) -> None:
    with _connect(proxy, timeout=0.3) as old:
        assert _roundtrip(old) == b"ping"
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            _roundtrip(old, b"held")
        with _connect(proxy, timeout=0.3) as new:  # accepted, never answered
            with pytest.raises(TimeoutError):
                _roundtrip(new)
            assert echo.received == 4  # nothing of the held bytes reached the server
            proxy.forward()
            old.settimeout(WAIT)
            assert old.recv(4) == b"held"  # the partition healed: the stream goes on
            new.settimeout(WAIT)
            with pytest.raises(OSError):  # never reached the server: reset
                if new.recv(10) == b"":
                    raise ConnectionResetError("closed")


def test_stall_holds_answers_mid_stream(proxy: TcpProxy, echo: EchoServer) -> None:
    with _connect(proxy, timeout=0.3) as sock:
        assert _roundtrip(sock) == b"ping"
        proxy.stall()
        sock.sendall(b"query")
        deadline = time.monotonic() + WAIT
        while echo.received < 9 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert echo.received == 9  # the request reached the server...
        with pytest.raises(TimeoutError):
            sock.recv(10)  # ...its answer is held
        proxy.forward()
        sock.settimeout(WAIT)
        assert sock.recv(10) == b"query"


def test_drop_all_cuts_and_keeps_forwarding(proxy: TcpProxy) -> None:
    socks = [_connect(proxy, timeout=WAIT) for _ in range(3)]
    try:
        for sock in socks:
            assert _roundtrip(sock) == b"ping"
        assert proxy.drop_all() == 3
        for sock in socks:
            with pytest.raises(OSError):
                if _roundtrip(sock) != b"ping":
                    raise ConnectionResetError("cut")
    finally:
        for sock in socks:
            sock.close()
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"


def test_close_stops_everything(echo: EchoServer) -> None:
    before = threading.active_count()
    proxy = TcpProxy("127.0.0.1", echo.port, mode="blackhole")
    held = _connect(proxy)
    proxy.close()
    proxy.close()  # idempotent
    held.close()
    assert threading.active_count() == before
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
