"""Functional tests: real MariaDB, PostgreSQL and RabbitMQ servers.

Everything under this directory carries the ``functional`` marker (so
``pytest -m "not functional"`` runs the unit tests only). Tests create their own
uniquely named databases through the factories below and never depend on
anything created up-front.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
# ``import servers`` works from any test module here, whatever --import-mode.
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import servers  # noqa: E402

DB_PREFIX = "crtest_"


def unique_db_name(label: str = "db") -> str:
    """A database name no other test, worker or concurrent run will use."""
    safe = "".join(c if c.isalnum() else "_" for c in label.lower())[:20] or "db"
    return f"{DB_PREFIX}{safe}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.functional)


def _db_factory(
    require: Callable[[], object],
    create: Callable[[str], str],
    drop: Callable[[str], None],
) -> Iterator[Callable[..., str]]:
    require()
    created: list[str] = []

    def make(label: str = "db") -> str:
        name = unique_db_name(label)
        url = create(name)
        created.append(name)
        return url

    yield make
    errors = []
    for name in reversed(created):
        try:
            drop(name)
        except Exception as exc:  # noqa: BLE001 - drop the rest, then report
            errors.append(f"{name}: {exc}")
    if errors:
        pytest.fail("could not drop test databases: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def mysql_db_factory() -> Iterator[Callable[..., str]]:
    """``make(label="db") -> url``: a fresh MariaDB database, dropped after the test."""
    yield from _db_factory(
        servers.require_mariadb, servers.create_mysql_database, servers.drop_mysql_database
    )


@pytest.fixture
def pg_db_factory() -> Iterator[Callable[..., str]]:
    """``make(label="db") -> url``: a fresh PostgreSQL database, dropped after the test."""
    yield from _db_factory(
        servers.require_postgresql, servers.create_pg_database, servers.drop_pg_database
    )
