"""Fixtures of the unit tests: a clean configuration, an SQLite API DB, SQLite cells.

Everything lives in ``tmp_path``; no server is needed.

* ``conf``: ``cellrouter.CONF`` freshly set up (no config files), reset after
  the test together with every pooled engine (``cellrouter.cells.registry.reset()``).
* ``api_db``: the URL of a migrated SQLite API database, configured as
  ``[api_database]/connection``.
* ``make_cells(n)``: n migrated SQLite cell databases, mapped; returns their
  :class:`~cellrouter.CellMapping` records (names ``cell1``, ``cell2``...,
  transports ``fake://cell1/``...). Numbering continues across calls.
* ``make_instance(cell, ...)``: an instance row in ``cell`` and, unless
  ``mapped=False``, its instance mapping; returns the instance uuid.
* ``admin_ctx``: an admin :class:`~cellrouter.RequestContext`.
"""

from __future__ import annotations

import itertools
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

import cellrouter.conf
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, get_admin_context
from cellrouter.db import migration
from cellrouter.db.cell_schema import instances
from cellrouter.db.types import utcnow
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.url import format_url, url_parts

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def insert_instance(cell_db_url: str, **values: Any) -> str:
    """Insert one row into the ``instances`` table of the cell at ``cell_db_url``."""
    row: dict[str, Any] = {
        "uuid": str(uuidlib.uuid4()),
        "project_id": "project-a",
        "user_id": "user-a",
        "host": "compute-1",
        "node": "node-1",
        "display_name": "vm",
        "vm_state": "active",
        "created_at": utcnow(),
        "deleted": 0,
    }
    row.update(values)
    engine = sa.create_engine(cell_db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(instances).values(row))
    finally:
        engine.dispose()
    return str(row["uuid"])


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    """A clean ``cellrouter.CONF`` (no config files, no overrides), reset afterwards."""
    conf = cellrouter.conf.setup([], default_config_files=[])
    conf.clear_override("connection", group="api_database")
    conf.clear_override("connection", group="database")
    conf.clear_override("transport_url")
    try:
        yield conf
    finally:
        registry.reset()
        conf.reset()
        format_url.cache_clear()
        url_parts.cache_clear()
        cellrouter.conf.setup([], default_config_files=[])


@pytest.fixture
def api_db(conf: cfg.ConfigOpts, tmp_path: Path) -> str:
    """URL of a migrated SQLite API database, set as ``[api_database]/connection``."""
    url = sqlite_url(tmp_path / "api.db")
    migration.sync("api", url)
    conf.set_override("connection", url, group="api_database")
    return url


@pytest.fixture
def admin_ctx() -> RequestContext:
    return get_admin_context()


@pytest.fixture
def make_cells(api_db: str, tmp_path: Path, admin_ctx: RequestContext) -> MakeCells:
    """``make_cells(n, disabled=False) -> [CellMapping]``: n migrated, mapped SQLite cells."""
    counter = itertools.count(1)

    def make(n: int, *, disabled: bool = False) -> list[CellMapping]:
        cells = []
        for _ in range(n):
            index = next(counter)
            url = sqlite_url(tmp_path / f"cell{index}.db")
            migration.sync("cell", url)
            cells.append(
                CellMapping.create(
                    admin_ctx,
                    name=f"cell{index}",
                    database_connection=url,
                    transport_url=f"fake://cell{index}/",
                    disabled=disabled,
                )
            )
        return cells

    return make


@pytest.fixture
def make_instance(admin_ctx: RequestContext) -> MakeInstance:
    """``make_instance(cell, *, mapped=True, project_id="project-a", **columns) -> uuid``."""

    def make(
        cell: CellMapping,
        *,
        mapped: bool = True,
        project_id: str = "project-a",
        user_id: str = "user-a",
        **columns: Any,
    ) -> str:
        instance_uuid = insert_instance(
            cell.database_connection, project_id=project_id, user_id=user_id, **columns
        )
        if mapped:
            InstanceMapping.create(
                admin_ctx,
                instance_uuid=instance_uuid,
                project_id=project_id,
                user_id=user_id,
                cell_mapping=cell,
            )
        return instance_uuid

    return make
