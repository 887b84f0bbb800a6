"""SQLite cells for list tests: copies of one migrated template, holding mapped instances."""

from __future__ import annotations

import datetime
import shutil
import uuid as uuidlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext
from cellrouter.db import migration
from cellrouter.db.api_schema import instance_mappings
from cellrouter.db.cell_schema import instances
from cellrouter.db.database import api_engine
from cellrouter.index.cell_mapping import CellMapping

#: (cell position, row index in the cell) -> the row's created_at
CreatedAt = Callable[[int, int], datetime.datetime]


def template(directory: Path) -> Path:
    """One migrated, empty SQLite cell database in ``directory``, to copy (fast)."""
    path = directory / "template.db"
    migration.sync("cell", f"sqlite:///{path}")
    return path


def new_cell(ctx: RequestContext, template: Path, name: str, **kw: Any) -> CellMapping:
    """A mapped cell whose database is a copy of ``template``."""
    path = template.with_name(f"{name}.db")
    shutil.copyfile(template, path)
    return CellMapping.create(
        ctx, name=name, database_connection=f"sqlite:///{path}", transport_url="none:///", **kw
    )


def fill(
    cells: Sequence[CellMapping],
    counts: Sequence[int],
    at: CreatedAt,
    project: str = "p1",
    mapping_times: bool = True,
) -> list[str]:
    """``counts[i]`` mapped instances in ``cells[i]``, created ``at(i, index)``; their
    uuids newest first. Their mappings are created at the same time (as when each
    is mapped as it is created), or with no time if not ``mapping_times``: the API
    database then cannot tell a page's order."""
    made: list[tuple[datetime.datetime, str]] = []
    mappings = []
    for position, (cell, count) in enumerate(zip(cells, counts, strict=True)):
        rows = []
        for index in range(count):
            created = at(position, index)
            uuid = str(uuidlib.uuid4())
            rows.append({"uuid": uuid, "created_at": created, "project_id": project, "deleted": 0})
            mappings.append(
                {
                    "instance_uuid": uuid,
                    "cell_id": cell.id,
                    "project_id": project,
                    "created_at": created if mapping_times else None,
                }
            )
            made.append((created, uuid))
        with registry.get(cell).engine.begin() as conn:
            conn.execute(sa.insert(instances), rows)
    with api_engine().begin() as conn:
        conn.execute(sa.insert(instance_mappings), mappings)
    return [uuid for _, uuid in sorted(made, reverse=True)]


def count_statements(cells: Sequence[CellMapping], containing: str | None = None) -> dict[str, int]:
    """Statements each cell runs from now on (those containing ``containing``), by uuid."""
    counts = dict.fromkeys((cell.uuid for cell in cells), 0)
    for cell in cells:

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any, uuid: str = cell.uuid) -> None:
            if containing is None or containing in statement:
                counts[uuid] += 1

        event.listen(registry.get(cell).engine, "before_cursor_execute", count)
    return counts
