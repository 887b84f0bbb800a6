"""Fixtures of the unit tests: everything on SQLite files in ``tmp_path``, no server.

``backend`` is narrowed to SQLite here, so the deployment fixtures of
``tests/conftest.py`` (``conf``, ``api_db``, ``make_cells``, ``make_instance``,
``admin_ctx``) give SQLite databases: the API database is
``<tmp_path>/api.db``, cell N is ``<tmp_path>/cellN.db``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_cells
from backends import Backend, SQLiteBackend, SQLiteTemplates
from oslo_config import cfg

from cellrouter.across import health, instance_list
from cellrouter.across.instance_counts import instance_counts
from cellrouter.index.cached_index import CACHED_INDEX


@pytest.fixture
def backend(tmp_path: Path, sqlite_templates: SQLiteTemplates) -> Backend:
    """SQLite only: unit tests need no server."""
    return SQLiteBackend(tmp_path, sqlite_templates)


@pytest.fixture
def lists_by_counts(conf: cfg.ConfigOpts) -> Iterator[None]:
    """Lists sized by the API database's instance counts (the scale path), with cell
    health, cached lookups, counts and the instance lister's state fresh before and after."""
    conf.set_override("list_cells_by_mappings", True, group="cells")
    lister = instance_list._INSTANCES
    for reset in (health.reset, CACHED_INDEX.reset, instance_counts().reset, lister.reset):
        reset()
    yield
    for reset in (health.reset, CACHED_INDEX.reset, instance_counts().reset, lister.reset):
        reset()


@pytest.fixture
def cell_template(tmp_path: Path) -> Path:
    """One migrated, empty SQLite cell database, copied for each cell (fast)."""
    return sqlite_cells.template(tmp_path)
