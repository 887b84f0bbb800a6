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
def fresh_listing() -> Iterator[None]:
    """Cell health, cached lookups, instance counts and the instance lister's state
    (kept statements, share margin, markers handed out) fresh before and after."""
    lister = instance_list._INSTANCES
    resets = (health.reset, CACHED_INDEX.reset, instance_counts().reset, lister.reset)
    for reset in resets:
        reset()
    yield
    for reset in resets:
        reset()


@pytest.fixture
def lists_by_counts(conf: cfg.ConfigOpts, fresh_listing: None) -> None:
    """Lists sized by the API database's instance counts (the scale path), on fresh
    listing state (:func:`fresh_listing`)."""
    conf.set_override("list_cells_by_mappings", True, group="cells")


@pytest.fixture
def cell_template(tmp_path: Path) -> Path:
    """One migrated, empty SQLite cell database, copied for each cell (fast)."""
    return sqlite_cells.template(tmp_path)
