"""Fixtures of the fault tests: the session's databases, a deployment per test, the scans.

The databases (API + one per cell, migrated and filled once) and the two
MariaDB users with URL-hostile passwords live for the session and are dropped
at its end; a second set (API on MariaDB, cells on PostgreSQL) is made the
first time a test asks for ``cell_backend`` "postgresql". Each test gets a
fresh configuration with small bounds, its own proxy in front of the third
cell's database, and its own scan for secrets.
"""

from __future__ import annotations

import logging
import os
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import servers

import cellrouter
import cellrouter.conf
from cellrouter.across import health
from cellrouter.cells import registry
from cellrouter.db import migration
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.url import format_url, url_parts
from faults import harness

# -- session: users and databases -------------------------------------------------------


def _create_user(name: str, password: str) -> None:
    admin = servers.mysql_url("mysql")
    for host in ("%", "localhost"):
        servers.admin_execute(admin, f"CREATE USER '{name}'@'{host}' IDENTIFIED BY '{password}'")
        servers.admin_execute(admin, f"GRANT ALL PRIVILEGES ON `crtest\\_%`.* TO '{name}'@'{host}'")


def _drop_user(name: str) -> None:
    admin = servers.mysql_url("mysql")
    for host in ("%", "localhost"):
        servers.admin_execute(admin, f"DROP USER IF EXISTS '{name}'@'{host}'")


@pytest.fixture(scope="session")
def fault_users() -> Iterator[tuple[str, str]]:
    """The MariaDB users of the cells and of the API database; dropped after the session."""
    servers.require_mariadb()
    suffix = f"{os.getpid()}_{uuidlib.uuid4().hex[:6]}"
    users = [f"crf_c_{suffix}", f"crf_a_{suffix}"]
    made_users: list[str] = []
    try:
        for user, password in zip(
            users, (harness.CELL_DB_PASSWORD, harness.API_DB_PASSWORD), strict=True
        ):
            made_users.append(user)
            _create_user(user, password)
        yield users[0], users[1]
    finally:
        errors = []
        for user in made_users:
            try:
                _drop_user(user)
            except Exception as exc:  # noqa: BLE001 - drop the rest, then report
                errors.append(f"user {user}: {exc}")
        if errors:
            pytest.fail("fault suite cleanup failed: " + "; ".join(errors), pytrace=False)


def _world(backend: str, users: tuple[str, str]) -> Iterator[harness.World]:
    """API database (MariaDB) + 3 cell databases on ``backend`` with instances; dropped after."""
    suffix = f"{os.getpid()}_{uuidlib.uuid4().hex[:6]}"
    tag = "pg_" if backend == "postgresql" else ""
    names = [f"crtest_fault_{tag}{label}_{suffix}" for label in ("api", "c0", "c1", "c2")]
    if backend == "postgresql":
        create_cell, drop_cell = servers.create_pg_database, servers.drop_pg_database
        cell_user = "postgres"  # trusted: the password in its URLs is ignored by the server
    else:
        create_cell, drop_cell = servers.create_mysql_database, servers.drop_mysql_database
        cell_user = users[0]
    created: list[tuple[Callable[[str], None], str]] = []
    try:
        root_urls = [servers.create_mysql_database(names[0])]
        created.append((servers.drop_mysql_database, names[0]))
        for name in names[1:]:
            root_urls.append(create_cell(name))
            created.append((drop_cell, name))
        migration.sync("api", root_urls[0])
        for url in root_urls[1:]:
            migration.sync("cell", url)
        cell_uuids = [str(uuidlib.uuid4()) for _ in range(harness.CELL_COUNT)]
        world = harness.World(
            api_db=names[0],
            cell_dbs=names[1:],
            cell_uuids=cell_uuids,
            cell_user=cell_user,
            api_user=users[1],
            rows={},
            hosts={cell_uuid: f"compute-{i}" for i, cell_uuid in enumerate(cell_uuids)},
            backend=backend,
        )
        # The suite's secret really is in the cells' URLs (the scan must see it).
        assert harness.enc(harness.CELL_DB_PASSWORD) in world.cell_url(0)
        harness.fill_world(root_urls[0], root_urls[1:], world)
        yield world
    finally:
        errors = []
        for drop, name in reversed(created):
            try:
                drop(name)
            except Exception as exc:  # noqa: BLE001 - drop the rest, then report
                errors.append(f"{name}: {exc}")
        if errors:
            pytest.fail("fault suite cleanup failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture(scope="session")
def world(fault_users: tuple[str, str]) -> Iterator[harness.World]:
    """API + 3 cell databases on MariaDB with instances; dropped after the session."""
    yield from _world("mariadb", fault_users)


@pytest.fixture(scope="session")
def pg_world(fault_users: tuple[str, str]) -> Iterator[harness.World]:
    """API database on MariaDB + 3 cell databases on PostgreSQL; dropped after the session.

    Only set up when a test runs with ``cell_backend`` "postgresql".
    """
    servers.require_postgresql()
    yield from _world("postgresql", fault_users)


@pytest.fixture
def cell_backend(request: pytest.FixtureRequest) -> str:
    """The cell databases' server: "mariadb", unless a test is parametrized with it
    (``@pytest.mark.parametrize("cell_backend", harness.CELL_BACKENDS, indirect=True)``)."""
    backend = getattr(request, "param", "mariadb")
    assert backend in harness.CELL_BACKENDS, backend
    return backend


# -- per test: scans and metrics ---------------------------------------------------------


@pytest.fixture(autouse=True)
def leak_scan(caplog: pytest.LogCaptureFixture) -> Iterator[harness.LeakScan]:
    """Every log record (cellrouter and oslo at DEBUG), exception and health record of
    the test is scanned for the suite's passwords at teardown."""
    for name in harness.LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    scan = harness.LeakScan()
    yield scan
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    scan.add_records(records)
    harness.SESSION["scanned"] += len(scan.texts)
    leaks = scan.leaks()
    if leaks:
        pytest.fail(f"{len(leaks)} secret(s) in clear text: " + "; ".join(leaks[:5]))


@pytest.fixture
def metric(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Measured numbers, printed as one ``FAULT-METRIC`` line at teardown (``pytest -s``)."""
    values: dict[str, Any] = {}
    yield values

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    line = " ".join(f"{key}={fmt(value)}" for key, value in values.items())
    print(f"\nFAULT-METRIC {request.node.name} {line}")


# -- per test: the deployment ---------------------------------------------------------------


@pytest.fixture
def deployment(
    cell_backend: str, request: pytest.FixtureRequest, leak_scan: harness.LeakScan
) -> Iterator[harness.Deployment]:
    world: harness.World = request.getfixturevalue(
        "pg_world" if cell_backend == "postgresql" else "world"
    )
    conf = cellrouter.conf.setup([], default_config_files=[])
    health.reset()
    CACHED_INDEX.reset()
    dep: harness.Deployment | None = None
    try:
        for name, value in harness.CELLS_OVERRIDES.items():
            conf.set_override(name, value, group="cells")
        dep = harness.Deployment(world, conf, leak_scan)
        yield dep
    finally:
        try:
            if dep is not None:
                leak_scan.add_health()
                dep.close()
        finally:
            registry.reset()
            conf.reset()
            conf.clear_override("connection", group="api_database")
            format_url.cache_clear()
            url_parts.cache_clear()
            cellrouter.conf.setup([], default_config_files=[])
