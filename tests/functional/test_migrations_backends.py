"""Both schema tiers on MariaDB and PostgreSQL: the shared migration behaviour class.

SQLite runs the same class in ``tests/unit/test_migrations.py``; here the
``backend`` matrix of ``tests/backends.py`` is narrowed to the servers.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from backends import SERVER_BACKENDS, Backend
from migration_behaviour import MigrationBehaviour


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
class TestMigrationsOnServers(MigrationBehaviour):
    @pytest.fixture
    def new_database(self, backend: Backend) -> Callable[..., str]:
        """``new_database(label) -> url``: an empty database, dropped after the test."""
        return backend.new_database
