"""What the fault tests share: bounds, secrets, the deployment, the load threads, metrics.

The deployment: an API database on MariaDB and three cell databases (one
database per cell, a few hundred instances each) on MariaDB or, for the tests
parametrized by ``cell_backend``, on PostgreSQL; reached with users whose
passwords need percent-encoding (PostgreSQL's trust authentication ignores the
password, but its URLs carry one all the same, so the secret scan covers them);
one cell's database (and, when a test asks, the API database) through a
:class:`~faults.proxy.TcpProxy`.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import statistics
import threading
import time
import traceback
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote

import servers  # tests/functional/ is on sys.path (its conftest)
import sqlalchemy as sa
from oslo_config import cfg

import cellrouter
from cellrouter import exception
from cellrouter.across import health
from cellrouter.across.lister import ListResult
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext
from cellrouter.cells.instance import get_instance
from cellrouter.db.api_schema import cell_mappings, instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.index.cached_index import CACHED_INDEX
from faults.proxy import TcpProxy

# -- the configured bounds ([cells] overrides) and what the tests derive from them --------

CONNECT_TIMEOUT = 1.0
QUERY_TIMEOUT = 2.0
SCATTER_TIMEOUT = 3.0
CELL_DOWN_INTERVAL = 2.0
PROBE_TIMEOUT = 1.0
RPC_RETRY = 1
RPC_SEND_TIMEOUT = 12.0
CELLS_OVERRIDES: dict[str, Any] = {
    "db_connect_timeout": CONNECT_TIMEOUT,
    "db_query_timeout": QUERY_TIMEOUT,
    "scatter_timeout": SCATTER_TIMEOUT,
    "cell_down_interval": CELL_DOWN_INTERVAL,
    "health_probe_timeout": PROBE_TIMEOUT,
    "rpc_retry": RPC_RETRY,
    "rpc_send_timeout": RPC_SEND_TIMEOUT,
}

#: slack for a loaded 2-core machine on top of every configured bound
MARGIN = 2.0
#: a show may wait for a pre-ping (one round trip), then a new connection
#: (connect, then the server's greeting: one more round trip). On PostgreSQL
#: libpq's connect_timeout (whole seconds, at least 2) covers connect and
#: greeting together: a pre-ping plus a connection stays within this bound too.
SHOW_BOUND = CONNECT_TIMEOUT + 2 * QUERY_TIMEOUT + MARGIN
#: a list or scatter waits for the slowest cell at most scatter_timeout
LIST_BOUND = SCATTER_TIMEOUT + MARGIN
#: "fast": a list or scatter once the failed cell is known down
FAST = 1.0
#: shows in healthy cells while another cell fails: p99 under this
GOOD_P99 = 0.5
#: the failed cell is probed at the end of its down interval (a probe still
#: hanging from the fault costs one more interval), then a list must get through
RECOVERY_BOUND = 2 * CELL_DOWN_INTERVAL + PROBE_TIMEOUT + LIST_BOUND
#: a cast: rpc_retry reconnects, each bounded by kombu's connect timeout (4 s)
#: plus oslo.messaging's retry interval; rpc_send_timeout bounds it all
CAST_BOUND = RPC_SEND_TIMEOUT + MARGIN
#: calls this close to a fault switch may see either side of it
EDGE = 0.05

INSTANCES_PER_CELL = 300
CELL_COUNT = 3
#: the servers the cell databases can run on (the API database is always on MariaDB)
CELL_BACKENDS = ("mariadb", "postgresql")

# -- secrets: every URL of the suite carries one ---------------------------------------

#: the cells' MariaDB user (and the password in the cells' PostgreSQL URLs)
CELL_DB_PASSWORD = "S3cr3t!p@ss"
#: the API database's MariaDB user
API_DB_PASSWORD = "pw/with?odd#chars"
#: the RabbitMQ user ("p%40ss" in its URLs)
MQ_PASSWORD = "p@ss"
#: a password that looks percent-encoded: "p%2540ss" in a URL
LITERAL_PERCENT_PASSWORD = "p%40ss"
#: clear-text, URL-encoded and decoded forms, and fragments a bad cut would leave
FORBIDDEN = (
    "S3cr3t!p@ss",
    "S3cr3t%21p%40ss",
    "S3cr3t",
    "p%40ss",
    "p@ss",
    "p%2540ss",
    "pw/with?odd#chars",
    "pw%2Fwith%3Fodd%23chars",
    "odd#chars",
    "odd%23chars",
)
#: the loggers captured at DEBUG (others propagate at their own level)
LOGGERS = ("cellrouter", "oslo", "oslo_messaging", "oslo_config")

SESSION = {"scanned": 0}  # texts scanned by every fault test so far


def enc(password: str) -> str:
    return quote(password, safe="")


def mysql_user_url(
    database: str, user: str, password: str, host: str = "127.0.0.1", port: int | None = None
) -> str:
    if port is None:
        port = int(servers.MYSQL_HOST.rpartition(":")[2])
    return (
        f"mysql+pymysql://{user}:{enc(password)}@{host}:{port}/{database}"
        "?ssl_disabled=true&charset=utf8mb4"
    )


def mysql_target() -> tuple[str, int]:
    host, _, port = servers.MYSQL_HOST.rpartition(":")
    return host, int(port)


def pg_target() -> tuple[str, int]:
    host, _, port = servers.PG_HOST.rpartition(":")
    return host, int(port)


def pg_user_url(database: str, user: str, password: str, port: int | None = None) -> str:
    """A psycopg URL; the server trusts local connections, the password is there for the scan."""
    host, default_port = pg_target()
    return f"postgresql+psycopg://{user}:{enc(password)}@{host}:{port or default_port}/{database}"


def rabbit_target() -> tuple[str, int]:
    host, _, port = servers.RABBIT_HOST.rpartition(":")
    return host, int(port)


def rabbit_user_url(vhost: str, user: str, password: str, port: int | None = None) -> str:
    host, default_port = rabbit_target()
    return (
        f"rabbit://{user}:{enc(password)}@{host}:{port or default_port}/{vhost}"
        "?heartbeat_timeout_threshold=0"
    )


class LeakScan:
    """Every text a test produced that could carry a secret; none may."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._lock = threading.Lock()
        self._formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self._records: set[int] = set()

    def add_text(self, text: str) -> None:
        with self._lock:
            self.texts.append(text)

    def add_exception(self, exc: BaseException) -> None:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self.add_text(str(current))
            self.add_text(repr(current))
            current = current.__cause__ or current.__context__
        self.add_text("".join(traceback.format_exception(exc)))

    def add(self, value: object) -> None:
        if isinstance(value, BaseException):
            self.add_exception(value)
        else:
            self.add_text(str(value))
            self.add_text(repr(value))

    def add_health(self) -> None:
        for record in cellrouter.cell_health().values():
            self.add_text(repr(record))

    def add_records(self, records: Iterable[logging.LogRecord]) -> None:
        for record in records:
            if id(record) not in self._records:
                self._records.add(id(record))
                self.add_text(self._formatter.format(record))

    def leaks(self) -> list[str]:
        with self._lock:
            texts = list(self.texts)
        found = []
        for text in texts:
            for secret in FORBIDDEN:
                if secret in text:
                    at = text.index(secret)
                    found.append(f"{secret!r} in ...{text[max(0, at - 80) : at + 40]!r}...")
        return found


# -- the deployment ----------------------------------------------------------------------


@dataclasses.dataclass
class World:
    """The session's databases: names, users, cells and the instances placed in them."""

    api_db: str
    cell_dbs: list[str]
    cell_uuids: list[str]
    cell_user: str
    api_user: str
    #: cell uuid -> its instances' uuids, in creation order
    rows: dict[str, list[str]]
    #: cell uuid -> the compute host of its instances
    hosts: dict[str, str]
    #: the cell databases' server: "mariadb" or "postgresql"
    backend: str = "mariadb"

    def api_url(self, port: int | None = None) -> str:
        return mysql_user_url(self.api_db, self.api_user, API_DB_PASSWORD, port=port)

    def cell_url(self, index: int, port: int | None = None) -> str:
        if self.backend == "postgresql":
            return pg_user_url(self.cell_dbs[index], self.cell_user, CELL_DB_PASSWORD, port=port)
        return mysql_user_url(self.cell_dbs[index], self.cell_user, CELL_DB_PASSWORD, port=port)

    def cell_target(self) -> tuple[str, int]:
        """The server of the cell databases (what the cell proxy forwards to)."""
        return pg_target() if self.backend == "postgresql" else mysql_target()

    @property
    def all_rows(self) -> frozenset[str]:
        return frozenset(uuid for rows in self.rows.values() for uuid in rows)


def fill_world(api_root_url: str, cell_root_urls: Sequence[str], world: World) -> None:
    """Map the cells (placeholder URLs, set per test) and place the instances."""
    base = datetime.datetime(2024, 1, 1)
    api = sa.create_engine(api_root_url, poolclass=sa.pool.NullPool)
    try:
        with api.begin() as conn:
            for index, cell_uuid in enumerate(world.cell_uuids):
                conn.execute(
                    sa.insert(cell_mappings).values(
                        uuid=cell_uuid,
                        name=f"fault{index}",
                        database_connection=world.cell_url(index),
                        transport_url="none:///",
                        disabled=False,
                        created_at=base,
                    )
                )
            ids = dict(conn.execute(sa.select(cell_mappings.c.uuid, cell_mappings.c.id)).all())
            for index, (cell_uuid, cell_url) in enumerate(
                zip(world.cell_uuids, cell_root_urls, strict=True)
            ):
                host = world.hosts[cell_uuid]
                rows, mappings = [], []
                for n in range(INSTANCES_PER_CELL):
                    instance_uuid = str(uuidlib.uuid4())
                    created = base + datetime.timedelta(seconds=n * CELL_COUNT + index)
                    rows.append(
                        {
                            "uuid": instance_uuid,
                            "project_id": f"project-{n % 5}",
                            "user_id": "user-1",
                            "host": host,
                            "display_name": f"vm-{index}-{n}",
                            "vm_state": "active",
                            "memory_mb": 512,
                            "created_at": created,
                            "deleted": 0,
                        }
                    )
                    mappings.append(
                        {
                            "instance_uuid": instance_uuid,
                            "cell_id": ids[cell_uuid],
                            "project_id": f"project-{n % 5}",
                            "user_id": "user-1",
                            "queued_for_delete": False,
                            "created_at": created,
                        }
                    )
                conn.execute(sa.insert(instance_mappings), mappings)
                cell = sa.create_engine(cell_url, poolclass=sa.pool.NullPool)
                try:
                    with cell.begin() as cell_conn:
                        cell_conn.execute(sa.insert(instances), rows)
                finally:
                    cell.dispose()
                world.rows[cell_uuid] = [row["uuid"] for row in rows]
    finally:
        api.dispose()


# -- the deployment one test sees -------------------------------------------------------------


class Deployment:
    """The world as one test sees it: configuration, mapped cells, proxies."""

    def __init__(self, world: World, conf: cfg.ConfigOpts, scan: LeakScan) -> None:
        self.world = world
        self.conf = conf
        self.scan = scan
        self.ctx = cellrouter.get_admin_context()
        self.proxies: list[TcpProxy] = []
        self._cleanups: list[Callable[[], None]] = []
        self.api_proxy: TcpProxy | None = None
        self.cell_proxy = self.proxy(*world.cell_target())
        conf.set_override("connection", world.api_url(), group="api_database")
        self.transport_urls = [
            rabbit_user_url(f"crf_none_{i}", "crf_mq", MQ_PASSWORD) for i in range(CELL_COUNT)
        ]
        self.remap()

    def proxy(self, host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        self.proxies.append(proxy)
        return proxy

    def on_close(self, fn: Callable[[], None]) -> None:
        self._cleanups.append(fn)

    def db_url(self, index: int) -> str:
        """Cells 0 and 1 directly, cell 2 through the cell proxy."""
        port = self.cell_proxy.port if index == 2 else None
        return self.world.cell_url(index, port=port)

    def remap(self) -> None:
        """Point the mappings at this test's URLs (the API database is shared)."""
        for index, cell_uuid in enumerate(self.world.cell_uuids):
            cell = cellrouter.CellMapping.get_by_uuid(self.ctx, cell_uuid)
            cell.update(
                self.ctx,
                database_connection=self.db_url(index),
                transport_url=self.transport_urls[index],
            )
        health.reset()
        CACHED_INDEX.reset()
        self.cells = [
            cellrouter.CellMapping.get_by_uuid(self.ctx, cell_uuid)
            for cell_uuid in self.world.cell_uuids
        ]
        self.good = self.cells[:2]
        self.bad = self.cells[2]

    def proxy_api(self) -> TcpProxy:
        """From now on the API database is reached through a proxy."""
        self.api_proxy = self.proxy(*mysql_target())
        self.conf.set_override(
            "connection", self.world.api_url(port=self.api_proxy.port), group="api_database"
        )
        CACHED_INDEX.reset()
        return self.api_proxy

    def rows(self, cell_uuid: str) -> list[str]:
        return self.world.rows[cell_uuid]

    def close(self) -> None:
        errors: list[BaseException] = []
        for fn in [health.reset, CACHED_INDEX.reset, registry.reset, *self._cleanups]:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - release the rest first
                errors.append(exc)
        for proxy in self.proxies:
            try:
                proxy.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            raise errors[0]


# -- the operations under load -------------------------------------------------------------


def show(ctx: RequestContext, instance_uuid: str, route: bool = False) -> Any:
    """The show path: mapping, then the row in the instance's cell (or route_instance)."""
    if route:
        return cellrouter.route_instance(ctx, instance_uuid)
    mapping = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
    with cellrouter.target_cell(ctx, mapping.cell_mapping) as cctx:
        return get_instance(cctx, instance_uuid)


@dataclasses.dataclass(frozen=True)
class ListSummary:
    uuids: tuple[str, ...]
    failed: dict[str, str]

    @property
    def partial(self) -> bool:
        return bool(self.failed)


def list_all(ctx: RequestContext, scan: LeakScan | None = None, **kw: Any) -> ListSummary:
    result: ListResult = cellrouter.list_instances(ctx, **kw)
    if scan is not None and result.failed_cells:
        scan.add(dict(result.failed_cells))
    if result.partial != bool(result.failed_cells):
        raise AssertionError("ListResult.partial disagrees with failed_cells")
    return ListSummary(tuple(row["uuid"] for row in result.rows), dict(result.failed_cells))


def count_instances(cctx: RequestContext) -> int:
    with cctx.engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(instances).where(instances.c.deleted == 0)
        return int(conn.execute(stmt).scalar_one())


def scatter_counts(ctx: RequestContext, scan: LeakScan | None = None) -> dict[str, Any]:
    """scatter_gather_all_cells of an instance count: {cell uuid: count or failure}."""
    results = cellrouter.scatter_gather_all_cells(ctx, count_instances)
    for value in results.values():
        if scan is not None and isinstance(value, BaseException):
            scan.add(value)
    return results


def list_problem(summary: ListSummary, world: World) -> str | None:
    """What is wrong with a list (None: it holds exactly the rows of every cell it
    does not report as failed)."""
    if len(summary.uuids) != len(set(summary.uuids)):
        return "duplicate rows"
    if not set(summary.failed) <= set(world.cell_uuids):
        return f"unknown failed cells {summary.failed}"
    expected = {
        uuid
        for cell_uuid, rows in world.rows.items()
        if cell_uuid not in summary.failed
        for uuid in rows
    }
    missing, extra = expected - set(summary.uuids), set(summary.uuids) - expected
    if missing or extra:
        return (
            f"{len(missing)} rows missing, {len(extra)} unexpected "
            f"(partial={summary.partial}, failed={summary.failed})"
        )
    return None


def check_list(summary: ListSummary, world: World) -> None:
    problem = list_problem(summary, world)
    assert problem is None, problem


# -- load threads ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Call:
    op: str
    target: str | None  # the cell a show or cast went to; None: every cell
    worker: int
    start: float  # time.monotonic()
    end: float
    value: Any = None
    error: BaseException | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def ok(self) -> bool:
        return self.error is None


class Load:
    """Threads each calling one operation in a loop, bounded in count and time.

    ``add(op, target, fn)`` registers a worker calling ``fn(i)`` for i = 0, 1, ...;
    every call is recorded (:class:`Call`) and every exception goes to the scan.
    """

    def __init__(
        self,
        scan: LeakScan,
        max_seconds: float = 60.0,
        max_calls: int = 20000,
        pause: float = 0.002,
    ) -> None:
        self.scan = scan
        self.pause = pause
        self.max_seconds = max_seconds
        self.max_calls = max_calls
        self.calls: list[Call] = []
        self._workers: list[tuple[str, str | None, Callable[[int], Any]]] = []
        self._threads: list[threading.Thread] = []
        self._inflight: dict[int, tuple[str, float] | None] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def add(self, op: str, target: str | None, fn: Callable[[int], Any]) -> None:
        self._workers.append((op, target, fn))

    def start(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for index, (op, target, fn) in enumerate(self._workers):
            thread = threading.Thread(
                target=self._run,
                args=(index, op, target, fn, deadline),
                name=f"fault-load-{op}-{index}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _run(
        self, index: int, op: str, target: str | None, fn: Callable[[int], Any], deadline: float
    ) -> None:
        for i in range(self.max_calls):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            start = time.monotonic()
            self._inflight[index] = (op, start)
            value: Any = None
            error: BaseException | None = None
            try:
                value = fn(i)
            except Exception as exc:  # noqa: BLE001 - recorded and checked by the test
                error = exc
            end = time.monotonic()
            self._inflight[index] = None
            with self._lock:
                self.calls.append(Call(op, target, index, start, end, value, error))
            if error is not None:
                self.scan.add(error)
            self._stop.wait(self.pause)  # let the other threads in

    def stuck(self, older_than: float) -> int:
        """Workers inside a call that started more than ``older_than`` seconds ago."""
        now = time.monotonic()
        return sum(
            1 for entry in list(self._inflight.values()) if entry and now - entry[1] > older_than
        )

    def stop(self, timeout: float) -> int:
        """Stop and join every worker (``timeout`` in total); returns how many are left."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in self._threads)

    def select(
        self,
        op: str | None = None,
        target: str | None | object = ...,
        after: float | None = None,
        before: float | None = None,
    ) -> list[Call]:
        """Calls of ``op`` to ``target`` that started at/after ``after`` and ended by ``before``."""
        with self._lock:
            calls = list(self.calls)
        return [
            call
            for call in calls
            if (op is None or call.op == op)
            and (target is ... or call.target == target)
            and (after is None or call.start >= after)
            and (before is None or call.end <= before)
        ]


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def poll(fn: Callable[[], Any], done: Callable[[Any], bool], bound: float) -> tuple[float, Any]:
    """Call ``fn`` until ``done(result)`` (exceptions count as not done), at most ``bound`` s.

    Returns (seconds it took, last result or exception); seconds is inf when it never did.
    """
    start = time.monotonic()
    last: Any = None
    for _ in range(int(bound / 0.05) + 100):
        try:
            last = fn()
        except Exception as exc:  # noqa: BLE001 - not done yet
            last = exc
        else:
            if done(last):
                return time.monotonic() - start, last
        if time.monotonic() - start > bound:
            break
        time.sleep(0.05)
    return float("inf"), last


def unavailable_problem(
    exc: BaseException | None,
    cell_uuid: str | None,
    cls: type[Exception] = exception.CellUnavailable,
    cause: bool = True,
) -> str | None:
    """What is wrong with ``exc`` as the ``cls`` error of ``cell_uuid`` (None: nothing).

    Expected: an instance of ``cls``, ``kwargs["uuid"]`` the cell's uuid (when
    given), chained (``__cause__``) to the error that made it (when ``cause``).
    """
    if not isinstance(exc, cls):
        return f"expected {cls.__name__}, got {type(exc).__name__}: {exc}"
    if cell_uuid is not None and exc.kwargs.get("uuid") != cell_uuid:
        return f"{cls.__name__}.kwargs['uuid'] is not the cell's uuid: {exc.kwargs}"
    if cause and exc.__cause__ is None:
        return f"{cls.__name__} without __cause__: {exc}"
    return None


class Checks:
    """Soft assertions: a test reports every kind of violation at once, with counts."""

    def __init__(self) -> None:
        self._problems: dict[str, list[Any]] = {}

    def expect(self, ok: object, message: str, key: str | None = None) -> bool:
        """Record ``message`` unless ``ok``; violations with the same ``key`` are counted."""
        if not ok:
            entry = self._problems.setdefault(key or message, [message, 0])
            entry[1] += 1
        return bool(ok)

    def unavailable(
        self,
        exc: BaseException | None,
        cell_uuid: str | None,
        what: str,
        cls: type[Exception] = exception.CellUnavailable,
        cause: bool = True,
    ) -> None:
        problem = unavailable_problem(exc, cell_uuid, cls, cause)
        self.expect(problem is None, f"{what}: {problem}", key=f"{what}: {problem}"[:60])

    def done(self) -> None:
        if self._problems:
            lines = [
                f"- {message}" + (f"  [x{count}]" if count > 1 else "")
                for message, count in self._problems.values()
            ]
            raise AssertionError("fault behaviour violated:\n" + "\n".join(lines))
