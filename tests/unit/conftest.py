"""Fixtures of the unit tests: everything on SQLite files in ``tmp_path``, no server.

``backend`` is narrowed to SQLite here, so the deployment fixtures of
``tests/conftest.py`` (``conf``, ``api_db``, ``make_cells``, ``make_instance``,
``admin_ctx``) give SQLite databases: the API database is
``<tmp_path>/api.db``, cell N is ``<tmp_path>/cellN.db``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import Backend, SQLiteBackend, SQLiteTemplates


@pytest.fixture
def backend(tmp_path: Path, sqlite_templates: SQLiteTemplates) -> Backend:
    """SQLite only: unit tests need no server."""
    return SQLiteBackend(tmp_path, sqlite_templates)
