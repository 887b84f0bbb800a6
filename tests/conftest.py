"""Fixtures shared by the unit and the functional tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cellrouter.db import api_schema, cell_schema

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
