"""Both schema tiers on MariaDB and PostgreSQL: the shared migration behaviour class."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from migration_behaviour import MigrationBehaviour


class TestMigrationsOnServers(MigrationBehaviour):
    @pytest.fixture(params=["mariadb", "postgresql"])
    def new_database(self, request: pytest.FixtureRequest) -> Callable[..., str]:
        """``new_database(label) -> url`` on the parametrized backend."""
        factory = "mysql_db_factory" if request.param == "mariadb" else "pg_db_factory"
        return request.getfixturevalue(factory)
