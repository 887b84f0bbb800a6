"""One backend matrix for behaviour tests: SQLite, MariaDB and PostgreSQL.

How to use it: a test (or a test class) that asks for the ``backend`` fixture
runs once per backend, SQLAlchemy style::

    class TestSomething:
        def test_it(self, backend: Backend) -> None:
            api_url = backend.migrated("api", "api")   # a fresh, migrated API database
            empty = backend.new_database("scratch")     # a fresh, empty database

The deployment fixtures of ``tests/conftest.py`` (``api_db``, ``make_cells``,
``make_instance``) build on ``backend``, so a test that asks for them runs on
the matrix too. ``tests/unit`` overrides ``backend`` with SQLite alone.

* ``sqlite`` always runs: files in the test's ``tmp_path``, no server.
* ``mariadb`` and ``postgresql`` use the real servers on 127.0.0.1 through
  ``tests/functional/servers.py`` (skipped when a server is down, failed under
  ``CI=true``) and carry the ``functional`` marker, so ``pytest -m "not
  functional"`` stays server-free.
* Only some backends: ``@pytest.mark.parametrize("backend", SERVER_BACKENDS,
  indirect=True)`` (or any sub-list of :data:`BACKENDS`).

Every database a test gets is fresh. Creating and migrating a server database
takes seconds here, so migrated ones come from a per-session pool: after the
test each is put back as migrations left it (their seeded rows only, identity
counters back) for the next test, or dropped if the test changed its schema;
the pool is dropped at the end of the session. Because of that, a migrated server database is not
named after its label (SQLite's is ``<tmp_path>/<label>.db``); use the URL you
get. Empty databases (:meth:`Backend.new_database`, :meth:`Backend.create`)
are created for the test and dropped after it.
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import itertools
import os
import pathlib
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from migration_behaviour import METADATA, VERSION_TABLES

from cellrouter.across import health
from cellrouter.cells import registry
from cellrouter.db import migration
from cellrouter.index.cached_index import CACHED_INDEX

_FUNCTIONAL = Path(__file__).resolve().parent / "functional"
if str(_FUNCTIONAL) not in sys.path:  # ``import servers``, as tests/functional does
    sys.path.insert(0, str(_FUNCTIONAL))

import servers  # noqa: E402

__all__ = [
    "BACKENDS",
    "SERVERS",
    "SERVER_BACKENDS",
    "Backend",
    "Pool",
    "SQLiteBackend",
    "SQLiteTemplates",
    "Server",
    "ServerBackend",
    "backend",
    "server_pools",
    "sqlite_templates",
]

#: The matrix: SQLite always; the servers marked ``functional``.
BACKENDS = [
    "sqlite",
    pytest.param("mariadb", marks=pytest.mark.functional),
    pytest.param("postgresql", marks=pytest.mark.functional),
]
SERVER_BACKENDS = BACKENDS[1:]

#: Prefix of every database the tests create (as in tests/functional).
DB_PREFIX = "crtest_"


def _unique(label: str) -> str:
    """A database name prefix no other test, worker or concurrent run will use."""
    return f"{DB_PREFIX}{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


class Backend(abc.ABC):
    """Fresh databases for one test on one backend (see the module docstring)."""

    name: str

    @abc.abstractmethod
    def url(self, label: str) -> str:
        """URL of this test's database ``label`` (not created; may be a template)."""

    @abc.abstractmethod
    def sibling(self, url: str, suffix: str) -> str:
        """URL of the database beside ``url`` named like it plus ``suffix`` (nova's cell0)."""

    @abc.abstractmethod
    def missing(self, label: str) -> str:
        """URL of a database that cannot be opened (none such: a cell whose database fails)."""

    @abc.abstractmethod
    def create(self, url: str) -> str:
        """Make the empty database of ``url`` (from :meth:`url`/:meth:`sibling`) exist."""

    @abc.abstractmethod
    def migrated(self, tier: str, label: str = "db") -> str:
        """URL of a fresh database migrated to the head of ``tier`` (``api``/``cell``)."""

    def new_database(self, label: str = "db") -> str:
        """URL of a fresh, empty database."""
        return self.create(self.url(label))


# -- SQLite ----------------------------------------------------------------------------


class SQLiteTemplates:
    """One migrated SQLite file per tier and session; a test gets a copy (no alembic run)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, Path] = {}

    def get(self, tier: str) -> Path:
        if tier not in self._files:
            path = self.directory / f"{tier}.db"
            migration.sync(tier, f"sqlite:///{path}")  # type: ignore[arg-type]
            self._files[tier] = path
        return self._files[tier]


class SQLiteBackend(Backend):
    """Database ``label`` is the file ``<directory>/<label>.db``."""

    name = "sqlite"

    def __init__(self, directory: Path, templates: SQLiteTemplates) -> None:
        self.directory = directory
        self.templates = templates

    def url(self, label: str) -> str:
        return f"sqlite:///{self.directory / f'{label}.db'}"

    def sibling(self, url: str, suffix: str) -> str:
        path = pathlib.PurePath(sa.make_url(url).database or "")
        return f"sqlite:///{path.with_name(f'{path.stem}{suffix}{path.suffix}')}"

    def missing(self, label: str) -> str:
        return f"sqlite:///{self.directory / 'missing-dir' / f'{label}.db'}"

    def create(self, url: str) -> str:
        return url  # SQLite creates the file on first use: absent is empty

    def migrated(self, tier: str, label: str = "db") -> str:
        path = self.directory / f"{label}.db"
        if path.exists():
            raise ValueError(f"database {label!r} was already made in this test")
        shutil.copyfile(self.templates.get(tier), path)
        return self.url(label)


# -- the servers -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Server:
    """How to reach, create and drop databases on one server (from ``servers.py``)."""

    name: str
    require: Callable[[], object]
    url: Callable[[str], str]
    create: Callable[[str], str]
    drop: Callable[[str], None]
    #: statements that bound the lock waits of the cleaning session (10 s)
    lock_timeouts: tuple[str, ...]
    #: ``identities(conn)``: the next value of every identity counter, by counter
    identities: Callable[[sa.Connection], dict[str, int]]
    #: ``set_identity(conn, counter, next_value)``
    set_identity: Callable[[sa.Connection, str, int], None]


def _mariadb_identities(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.text(
            "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL"
        )
    )
    return {table: int(value) for table, value in rows}


def _mariadb_set_identity(conn: sa.Connection, table: str, value: int) -> None:
    quoted = conn.dialect.identifier_preparer.quote(table)
    conn.execute(sa.text(f"ALTER TABLE {quoted} AUTO_INCREMENT = {int(value)}"))


def _postgresql_identities(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.text(
            "SELECT format('%I.%I', schemaname, sequencename),"
            " COALESCE(last_value + increment_by, start_value) FROM pg_sequences"
        )
    )
    return {sequence: int(value) for sequence, value in rows}


def _postgresql_set_identity(conn: sa.Connection, sequence: str, value: int) -> None:
    conn.execute(
        sa.text("SELECT setval(CAST(:sequence AS regclass), :value, false)"),
        {"sequence": sequence, "value": value},
    )


SERVERS = {
    "mariadb": Server(
        "mariadb",
        servers.require_mariadb,
        servers.mysql_url,
        servers.create_mysql_database,
        servers.drop_mysql_database,
        ("SET SESSION lock_wait_timeout = 10, innodb_lock_wait_timeout = 10",),
        _mariadb_identities,
        _mariadb_set_identity,
    ),
    "postgresql": Server(
        "postgresql",
        servers.require_postgresql,
        servers.pg_url,
        servers.create_pg_database,
        servers.drop_pg_database,
        ("SET lock_timeout = '10s'",),
        _postgresql_identities,
        _postgresql_set_identity,
    ),
}


@dataclasses.dataclass(frozen=True)
class Fresh:
    """What a just-migrated database of a tier holds: rows the migrations seed, counters."""

    rows: dict[str, list[dict[str, object]]]
    identities: dict[str, int]


class Pool:
    """Migrated databases of one tier on one server, reused test after test."""

    def __init__(self, server: Server, tier: str) -> None:
        self.server = server
        self.tier = tier
        self.metadata = METADATA[tier]
        self.tables = {*self.metadata.tables, VERSION_TABLES[tier]}
        self._prefix = _unique(f"pool_{tier}")
        self._count = itertools.count(1)
        self._free: list[str] = []
        self._names: list[str] = []
        self._fresh: Fresh | None = None

    def lease(self) -> str:
        """URL of a clean migrated database (a new one when none is free)."""
        if self._free:
            return self._free.pop()
        name = f"{self._prefix}_{next(self._count)}"
        url = self.server.create(name)
        self._names.append(name)
        migration.sync(self.tier, url)  # type: ignore[arg-type]
        if self._fresh is None:
            self._fresh = self._read_fresh(url)
        return url

    def give_back(self, url: str) -> None:
        """Make ``url`` as fresh for the next test, or drop it if its schema changed."""
        try:
            clean = self._refresh(url)
        except sa.exc.DBAPIError:
            clean = False
        if clean:
            self._free.append(url)
            return
        name = sa.make_url(url).database or ""
        self._names.remove(name)
        self.server.drop(name)

    def _read_fresh(self, url: str) -> Fresh:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                rows = {
                    table.name: [dict(row) for row in conn.execute(table.select()).mappings()]
                    for table in self.metadata.sorted_tables
                }
                return Fresh(
                    {name: seeded for name, seeded in rows.items() if seeded},
                    self.server.identities(conn),
                )
        finally:
            engine.dispose()

    def _refresh(self, url: str) -> bool:
        """Back to :attr:`_fresh`'s rows and counters; False if the schema is not head's."""
        assert self._fresh is not None, "a pooled database comes from lease()"
        fresh, tables = self._fresh, self.metadata.sorted_tables
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                for statement in self.server.lock_timeouts:
                    conn.execute(sa.text(statement))
                if set(sa.inspect(conn).get_table_names()) != self.tables:
                    return False
                version = sa.table(VERSION_TABLES[self.tier], sa.column("version_num"))
                versions = conn.scalars(sa.select(version.c.version_num)).all()
                if versions != [migration.head(self.tier)]:  # type: ignore[arg-type]
                    return False
                probes = [
                    sa.select(sa.literal(table.name)).where(sa.exists().select_from(table))
                    for table in tables
                ]
                filled = set(conn.scalars(sa.union_all(*probes)).all())
                for table in reversed(tables):  # children first
                    if table.name in filled:
                        conn.execute(table.delete())
                for table in tables:  # parents first
                    if table.name in fresh.rows:
                        conn.execute(table.insert(), fresh.rows[table.name])
                now = self.server.identities(conn)
                for counter, value in fresh.identities.items():
                    if now.get(counter) != value:
                        self.server.set_identity(conn, counter, value)
            return True
        finally:
            engine.dispose()

    def close(self) -> list[str]:
        """Drop every database of the pool; returns the errors."""
        names, self._names, self._free = self._names, [], []
        return at_once(self.server.drop, names)


def at_once(action: Callable[[str], object], items: list[str]) -> list[str]:
    """``action(item)`` for every item concurrently; returns the errors.

    Each mostly waits on a server (PostgreSQL drops take seconds one after another).
    """

    def run(item: str) -> str:
        try:
            action(item)
        except Exception as exc:  # noqa: BLE001 - do the others, then report
            return f"{item}: {exc}"
        return ""

    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(min(len(items), 8)) as workers:
        return [error for error in workers.map(run, items) if error]


class ServerBackend(Backend):
    """Databases on a real server: a pooled one per :meth:`migrated`, named ones per test."""

    def __init__(self, server: Server, pools: dict[tuple[str, str], Pool]) -> None:
        self.name = server.name
        self.server = server
        self.pools = pools
        self._prefix = _unique("t")
        self._leased: dict[str, Pool] = {}
        self._created: list[str] = []

    def url(self, label: str) -> str:
        return self.server.url(f"{self._prefix}_{label}")

    def sibling(self, url: str, suffix: str) -> str:
        parsed = sa.make_url(url)
        return parsed.set(database=f"{parsed.database}{suffix}").render_as_string(
            hide_password=False
        )

    def missing(self, label: str) -> str:
        return self.url(label)  # never created: the server refuses to open it

    def create(self, url: str) -> str:
        name = sa.make_url(url).database or ""
        self.server.create(name)
        self._created.append(name)
        return url

    def migrated(self, tier: str, label: str = "db") -> str:
        pool = self.pools.get((self.name, tier))
        if pool is None:
            pool = self.pools[self.name, tier] = Pool(self.server, tier)
        url = pool.lease()
        self._leased[url] = pool
        return url

    def close(self) -> None:
        """Close this process's connections, then clean the pooled and drop the new databases.

        The library keeps engines and a cell list per URL: a pooled URL comes
        back in the next test, so they are all forgotten first.
        """
        registry.reset()
        health.reset()
        CACHED_INDEX.reset()
        leased = self._leased
        errors = at_once(lambda url: leased[url].give_back(url), list(leased))
        errors += at_once(self.server.drop, self._created)
        self._leased.clear()
        self._created.clear()
        if errors:
            pytest.fail("could not clean test databases: " + "; ".join(errors), pytrace=False)


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SQLiteTemplates:
    """The session's migrated SQLite files, copied for each test."""
    return SQLiteTemplates(tmp_path_factory.mktemp("sqlite-templates"))


@pytest.fixture(scope="session")
def server_pools() -> Iterator[dict[tuple[str, str], Pool]]:
    """The session's pools of migrated server databases, dropped at the end."""
    pools: dict[tuple[str, str], Pool] = {}
    yield pools
    with concurrent.futures.ThreadPoolExecutor(max(len(pools), 1)) as workers:
        errors = [error for found in workers.map(Pool.close, pools.values()) for error in found]
    if errors:
        pytest.fail("could not drop pooled test databases: " + "; ".join(errors), pytrace=False)


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_templates: SQLiteTemplates,
    server_pools: dict[tuple[str, str], Pool],
) -> Iterator[Backend]:
    """The parametrized backend of this test: fresh databases, cleaned up after it."""
    if request.param == "sqlite":
        yield SQLiteBackend(tmp_path, sqlite_templates)
        return
    server = SERVERS[request.param]
    server.require()
    made = ServerBackend(server, server_pools)
    try:
        yield made
    finally:
        made.close()


def execute(url: str, stmt: Any) -> list[Any]:
    """Run ``stmt`` on the database at ``url`` in its own transaction (a fresh,
    unpooled connection); its rows, if it returns any."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(stmt)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()
