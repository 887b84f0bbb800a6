"""Time bounds and failure errors on every call into a cell (no servers needed).

The same behaviour against real servers behind a faulty TCP proxy is in
``tests/functional/faults``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kombu.exceptions
import pytest
import sqlalchemy as sa
from oslo_config import cfg

from cellrouter import exception, messaging
from cellrouter.across import health
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.db import database
from cellrouter.db.engine import timeout_connect_args
from cellrouter.index.cell_mapping import CellMapping

MakeCells = Callable[..., list[CellMapping]]


@pytest.fixture(autouse=True)
def clean_health() -> Iterator[None]:
    health.reset()
    yield
    health.reset()


# -- per-dialect driver arguments ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "mysql+pymysql://u@h/db",
            {"connect_timeout": 1.5, "read_timeout": 2.5, "write_timeout": 2.5},
        ),
        # mysqlclient takes whole seconds
        (
            "mysql+mysqldb://u@h/db",
            {"connect_timeout": 2, "read_timeout": 3, "write_timeout": 3},
        ),
        (
            "postgresql+psycopg://u@h/db",
            {
                "connect_timeout": 2,
                "tcp_user_timeout": 2500,
                "options": "-c statement_timeout=2500",
            },
        ),
        ("sqlite:///x.db", {"timeout": 2.5}),
        # the user's own values in the URL win
        ("mysql+pymysql://u@h/db?read_timeout=9", {"connect_timeout": 1.5, "write_timeout": 2.5}),
        (
            "postgresql+psycopg://u@h/db?options=-c%20search_path%3Dx&connect_timeout=7",
            {"tcp_user_timeout": 2500},
        ),
    ],
)
def test_every_dialect_gets_connect_and_query_bounds(
    conf: cfg.ConfigOpts, url: str, expected: dict[str, Any]
) -> None:
    conf.set_override("db_connect_timeout", 1.5, group="cells")
    conf.set_override("db_query_timeout", 2.5, group="cells")
    assert timeout_connect_args(sa.make_url(url)) == expected


def test_migrations_keep_the_connect_bound_only(conf: cfg.ConfigOpts) -> None:
    conf.set_override("db_query_timeout", 2.5, group="cells")
    args = timeout_connect_args(sa.make_url("mysql+pymysql://u@h/db"), queries=False)
    assert args == {"connect_timeout": 5.0}
    conf.set_override("db_query_timeout", 0, group="cells")  # 0: unbounded queries
    assert "read_timeout" not in timeout_connect_args(sa.make_url("mysql+pymysql://u@h/db"))


# -- the show path -----------------------------------------------------------------


def _refused_cell(admin_ctx: RequestContext, secret: str = "Sh0w-s3cret") -> CellMapping:
    # Nothing listens on port 1: refused at once, no server needed.
    return CellMapping.create(
        admin_ctx,
        name="refused",
        database_connection=f"mysql+pymysql://nova:{secret}@127.0.0.1:1/nova",
        transport_url="none:///",
    )


def test_a_refused_cell_raises_cell_unavailable_then_fails_at_once(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    conf.set_override("cell_down_interval", 3600, group="cells")
    cell = _refused_cell(admin_ctx)
    with target_cell(admin_ctx, cell) as cctx, pytest.raises(exception.CellUnavailable) as info:
        get_instance(cctx, "00000000-0000-0000-0000-00000000000a")
    error = info.value
    assert error.kwargs["uuid"] == cell.uuid and error.kwargs["what"] == "database"
    assert cell.identity in str(error) and "Sh0w-s3cret" not in str(error) + repr(error)
    assert error.__cause__ is not None and type(error.__cause__).__module__.startswith("pymysql")
    assert isinstance(error, exception.Unavailable)
    assert health.is_down(cell.uuid)

    # Known down: no connection attempt at all (the engine is never touched).
    engine = registry.get(cell).engine
    connects: list[object] = []
    sa.event.listen(engine, "do_connect", lambda *a: connects.append(a))
    with target_cell(admin_ctx, cell) as cctx:
        start = time.monotonic()
        with pytest.raises(exception.CellUnavailable, match="marked down") as fast:
            get_instance(cctx, "00000000-0000-0000-0000-00000000000a")
        assert time.monotonic() - start < 0.5
    assert connects == []
    # Its cause is the failure that marked the cell down, without that call's frames.
    cause = fast.value.__cause__
    assert type(cause) is type(error.__cause__) and cause.args == error.__cause__.args
    assert cause.__traceback__ is None


def test_the_down_gate_stops_new_connections_but_lets_the_probe_through(
    conf: cfg.ConfigOpts, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    conf.set_override("cell_down_interval", 3600, group="cells")
    (cell,) = make_cells(1)
    health.record_failure(cell, None)  # e.g. a scatter timed out on it
    engine = registry.get(cell).engine
    engine.dispose()  # no pooled connection left: the next use must connect
    with pytest.raises(exception.CellUnavailable, match="marked down"):
        engine.connect()
    # The probe thread may connect: the cell comes back.
    ok, error, _latency, _pending = health._probe_once(cell, 5.0, None)
    assert ok and error is None


def test_a_lost_connection_fails_once_without_marking_the_cell_down(
    conf: cfg.ConfigOpts, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    engine = registry.get(cell).engine

    def lost(*_args: Any) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    # An error on an open connection (the server answered before): not "down".
    with engine.connect() as conn:
        sa.event.listen(engine, "before_cursor_execute", lost)
        try:
            with pytest.raises(exception.CellUnavailable):
                conn.execute(sa.text("SELECT 1"))
        finally:
            sa.event.remove(engine, "before_cursor_execute", lost)
    assert not health.is_down(cell.uuid)


def test_an_unreachable_api_database_names_its_option(conf: cfg.ConfigOpts) -> None:
    secret = "Ap1-s3cret"
    conf.set_override(
        "connection", f"mysql+pymysql://nova:{secret}@127.0.0.1:1/nova", group="api_database"
    )
    database.reset()
    with pytest.raises(exception.ApiDatabaseUnavailable) as info:
        with database.api_engine().connect():
            pass
    text = str(info.value)
    assert "[api_database]/connection" in text and "nova:****@127.0.0.1:1" in text
    assert secret not in text + repr(info.value)
    assert info.value.__cause__ is not None


# -- bounded RPC -------------------------------------------------------------------


class _Owner:
    def __init__(self) -> None:
        self.failures: list[BaseException | None] = []
        self.successes = 0
        self.refuse: BaseException | None = None

    def queue_refused(self) -> BaseException | None:
        return self.refuse

    def queue_failed(self, error: BaseException | None) -> BaseException:
        self.failures.append(error)
        return exception.CellUnavailable(cell="c", uuid="u", what="queue", reason="down")

    def queue_succeeded(self) -> None:
        self.successes += 1


class _Client:
    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        self.behaviour()

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        return self.behaviour()

    def prepare(self, **kw: Any) -> _Client:
        return self


def test_a_cast_to_a_silent_broker_fails_within_the_bound() -> None:
    release = threading.Event()
    owner = _Owner()
    client = messaging.BoundedRPCClient(_Client(lambda: release.wait(30)), owner, 0.3)
    start = time.monotonic()
    try:
        with pytest.raises(exception.CellUnavailable):
            client.cast({}, "reboot")
        assert time.monotonic() - start < 5.0
        assert owner.failures == [None]
    finally:
        release.set()


def test_a_broker_error_becomes_the_owners_error_with_its_cause() -> None:
    owner = _Owner()

    def refused() -> None:
        raise kombu.exceptions.OperationalError("[Errno 111] Connection refused")

    client = messaging.BoundedRPCClient(_Client(refused), owner, 5.0)
    with pytest.raises(exception.CellUnavailable) as info:
        client.cast({}, "reboot")
    assert isinstance(info.value.__cause__, kombu.exceptions.OperationalError)
    assert len(owner.failures) == 1 and owner.successes == 0


def test_no_reply_and_bugs_are_not_broker_failures() -> None:
    owner = _Owner()

    def no_reply() -> None:
        raise messaging.MessagingTimeout("no reply")

    with pytest.raises(messaging.MessagingTimeout):
        messaging.BoundedRPCClient(_Client(no_reply), owner, 5.0).call({}, "ping")
    with pytest.raises(ZeroDivisionError):
        messaging.BoundedRPCClient(_Client(lambda: 1 / 0), owner, 5.0).cast({}, "x")
    assert owner.failures == []
    assert messaging.BoundedRPCClient(_Client(lambda: 42), owner, 5.0).call({}, "ping") == 42
    assert owner.successes == 1


def test_a_queue_known_down_fails_at_once() -> None:
    owner = _Owner()
    owner.refuse = exception.CellUnavailable(cell="c", reason="queue: marked down")
    sent: list[int] = []
    client = messaging.BoundedRPCClient(_Client(lambda: sent.append(1)), owner, 5.0)
    with pytest.raises(exception.CellUnavailable, match="marked down"):
        client.cast({}, "reboot")
    assert sent == []


def test_cell_clients_are_bounded_and_record_queue_health(
    conf: cfg.ConfigOpts, make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    conf.set_override("cell_down_interval", 3600, group="cells")
    conf.set_override("rpc_retry", 3, group="cells")
    (cell,) = make_cells(1)
    with target_cell(admin_ctx, cell) as cctx:
        client = cctx.rpc_client("compute", server="host1")
    assert isinstance(client, messaging.BoundedRPCClient)
    assert client._client.retry == 3  # oslo.messaging retries 3 times, not forever
    conn = registry.get(cell)
    error = conn.queue_failed(kombu.exceptions.OperationalError("refused"))
    assert isinstance(error, exception.CellUnavailable) and error.kwargs["what"] == "queue"
    state = health.cell_health()[cell.uuid]
    assert not state.queue_up and state.queue_last_error and state.up
    assert conn.queue_refused() is not None
    conn.queue_succeeded()
    assert conn.queue_refused() is None and health.cell_health()[cell.uuid].queue_up
