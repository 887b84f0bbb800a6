"""Fixtures shared by every test: configuration, a deployment on ``backend``, schema drift.

* ``backend``: the database backend matrix (``tests/backends.py``, registered
  here); ``tests/unit`` narrows it to SQLite.
* ``conf``: ``cellrouter.CONF`` freshly set up (no config files), reset after
  the test together with every pooled engine (``cellrouter.cells.registry.reset()``).
* ``api_db``: the URL of a migrated API database on ``backend``, configured as
  ``[api_database]/connection``.
* ``make_cells(n)``: n migrated cell databases on ``backend``, mapped; returns
  their :class:`~cellrouter.CellMapping` records (names ``cell1``, ``cell2``...,
  transports ``fake://cell1/``...). Numbering continues across calls.
* ``make_instance(cell, ...)``: an instance row in ``cell`` and, unless
  ``mapped=False``, its instance mapping; returns the instance uuid.
* ``admin_ctx``: an admin :class:`~cellrouter.RequestContext`.
* ``schema_drift(tier, url)``: alembic's differences between migrations and models.
"""

from __future__ import annotations

import itertools
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from oslo_config import cfg

import cellrouter.conf
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, get_admin_context
from cellrouter.db import api_schema, cell_schema
from cellrouter.db.cell_schema import instances
from cellrouter.db.types import utcnow
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.url import format_url, url_parts

if TYPE_CHECKING:
    from backends import Backend

pytest_plugins = ["backends"]

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]

SCHEMA_METADATA: dict[str, sa.MetaData] = {
    "api": api_schema.metadata,
    "cell": cell_schema.metadata,
}


def _same_literal_default(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """MariaDB reflects ``server_default=false()`` as ``'0'``: not a difference.

    Returns False (equal) when both defaults are the same literal once quotes and
    boolean spellings are normalised; None lets alembic's own comparison decide.
    """

    def norm(value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().strip("()").strip("'\"").lower()
        return {"false": "0", "true": "1"}.get(value, value)

    if inspected_default is not None and rendered_metadata_default is not None:
        if norm(inspected_default) == norm(rendered_metadata_default):
            return False
    return None


def schema_differences(tier: str, url: str) -> list[Any]:
    """alembic's differences between ``url``'s migrated schema and the tier's models.

    Only the tier's own tables are compared (the alembic version tables and the
    other tier's tables, if they share the database, are ignored).
    """
    metadata = SCHEMA_METADATA[tier]

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "table" or name in metadata.tables

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": _same_literal_default,
                    "include_name": include_name,
                    "target_metadata": metadata,
                },
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


@pytest.fixture
def schema_drift() -> Callable[[str, str], list[Any]]:
    """``schema_drift(tier, url)``: differences between migrations and models (want [])."""
    return schema_differences


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
def api_db(conf: cfg.ConfigOpts, backend: Backend) -> str:
    """URL of a migrated API database on ``backend``, set as ``[api_database]/connection``."""
    url = backend.migrated("api", "api")
    conf.set_override("connection", url, group="api_database")
    return url


@pytest.fixture
def admin_ctx() -> RequestContext:
    return get_admin_context()


@pytest.fixture
def make_cells(api_db: str, backend: Backend, admin_ctx: RequestContext) -> MakeCells:
    """``make_cells(n, disabled=False) -> [CellMapping]``: n migrated, mapped cells."""
    counter = itertools.count(1)

    def make(n: int, *, disabled: bool = False) -> list[CellMapping]:
        cells = []
        for _ in range(n):
            index = next(counter)
            cells.append(
                CellMapping.create(
                    admin_ctx,
                    name=f"cell{index}",
                    database_connection=backend.migrated("cell", f"cell{index}"),
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
