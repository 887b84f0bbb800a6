"""Helpers of the reference deployment tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

import cellrouter
from cellrouter import exception


def reset_cellrouter() -> None:
    """Back to a clean ``cellrouter.CONF`` (no files): releases every pooled connection."""
    cellrouter.setup([], default_config_files=[])


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (a generous bound, not a latency)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {predicate}")
        time.sleep(0.05)


def rows_everywhere(instance_uuid: str, read_deleted: str = "no") -> dict[str, dict[str, Any]]:
    """cell name -> the instance's row, in every mapped cell that has one."""
    ctx = cellrouter.get_admin_context(read_deleted=read_deleted)
    found = {}
    for cell in cellrouter.CellMapping.get_all(ctx):
        with cellrouter.target_cell(ctx, cell) as cctx:
            try:
                found[cell.name or cell.uuid] = dict(cellrouter.get_instance(cctx, instance_uuid))
            except exception.InstanceNotFound:
                pass
    return found


def database_snapshot(urls: Sequence[str]) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """url -> table -> every row, sorted: what "nothing was written" compares."""
    snapshot = {}
    for url in urls:
        engine = sa.create_engine(url)
        try:
            metadata = sa.MetaData()
            metadata.reflect(engine)
            with engine.connect() as conn:
                snapshot[url] = {
                    name: sorted((tuple(row) for row in conn.execute(sa.select(table))), key=repr)
                    for name, table in metadata.tables.items()
                }
        finally:
            engine.dispose()
    return snapshot
