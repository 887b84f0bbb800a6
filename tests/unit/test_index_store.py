"""The mapping store (cellrouter/index/store.py): the one writer of the mapping
tables, its transaction order (generation bump, in-transaction hooks, notices
after commit), the read contract, the cell-then-API protocol and the
``cell_generation`` counter."""

from __future__ import annotations

import ast
import re
import sys
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

import cellrouter
from cellrouter import exception
from cellrouter.cells.context import RequestContext
from cellrouter.db import migration
from cellrouter.db.api_schema import cell_generation, cell_mappings, host_mappings
from cellrouter.db.cell_schema import compute_nodes
from cellrouter.db.database import api_engine
from cellrouter.db.two_phase import CellStep, cell_then_api
from cellrouter.index import events, mapping_store, use_store
from cellrouter.index.api import MappingIndex, NewInstanceMapping
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.index.store import STORE, MappingStore
from cellrouter.manage import commands

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]
Change = tuple[str, tuple[str, ...]]

PACKAGE = Path(cellrouter.__file__).parent
#: the tables only the store may write
INDEX_TABLES = (
    "cell_mappings",
    "host_mappings",
    "instance_mappings",
    "build_requests",
    "instance_mapping_markers",
    "cell_generation",
)
STORE_MODULE = "cellrouter.index.store"
#: generic helpers that execute a statement for their caller (the caller is the writer)
PASS_THROUGH = {"cellrouter.db.bulk"}

_WRITE_SQL = re.compile(
    r"^\s*(?:INSERT\b.*?\bINTO|UPDATE|DELETE\s+FROM)\s+[\"`\[]?(\w+)", re.IGNORECASE | re.DOTALL
)
_TABLE_NAMES = "|".join(INDEX_TABLES)
_WRITE_TEXT = re.compile(
    rf"\b(?:INSERT\b.*?\bINTO|UPDATE|DELETE\s+FROM)\s+[\"`\[]?({_TABLE_NAMES})\b",
    re.IGNORECASE | re.DOTALL,
)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def _writer() -> str:
    """The module of the innermost cellrouter frame on the stack (helpers skipped)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("cellrouter.") and name not in PASS_THROUGH:
            return name
        frame = frame.f_back
    return "<no cellrouter module>"


@pytest.fixture
def index_writes() -> Iterator[list[tuple[str, str]]]:
    """(table, writing module) of every INSERT/UPDATE/DELETE on an index table, any engine."""
    seen: list[tuple[str, str]] = []

    def record(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        match = _WRITE_SQL.match(statement)
        if match and match.group(1).lower() in INDEX_TABLES:
            seen.append((match.group(1).lower(), _writer()))

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)


@pytest.fixture
def changes() -> Iterator[list[Change]]:
    """Every mapping_changed notice during the test."""
    seen: list[Change] = []

    def listener(kind: str, keys: tuple[str, ...]) -> None:
        seen.append((kind, keys))

    events.subscribe(listener)  # type: ignore[arg-type]
    try:
        yield seen
    finally:
        events.unsubscribe(listener)  # type: ignore[arg-type]


@pytest.fixture
def hooks() -> Iterator[Callable[[Callable[..., None]], None]]:
    """``add(hook)``: a store write hook for the test, removed afterwards."""
    added: list[Any] = []

    def add(hook: Callable[..., None]) -> None:
        STORE.add_write_hook(hook)
        added.append(hook)

    try:
        yield add
    finally:
        for hook in added:
            STORE.remove_write_hook(hook)


def _other_connection(url: str, stmt: sa.Executable) -> list[Any]:
    """Rows of ``stmt`` on a connection of its own (what another process sees)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt))
    finally:
        engine.dispose()


def _cell_names(url: str) -> set[str]:
    return {name for (name,) in _other_connection(url, sa.select(cell_mappings.c.name))}


def _add_nodes(cell: CellMapping | str, *hosts: str, mapped: bool = False) -> None:
    """Compute nodes of ``hosts`` in a cell (or the database at a URL)."""
    url = cell if isinstance(cell, str) else cell.database_connection
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rows = [
        {"uuid": new_uuid(), "host": h, "hypervisor_hostname": h, "mapped": mapped} for h in hosts
    ]
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(compute_nodes), rows)
    finally:
        engine.dispose()


def _node_flags(cell: CellMapping) -> dict[str, bool]:
    rows = _other_connection(
        cell.database_connection, sa.select(compute_nodes.c.host, compute_nodes.c.mapped)
    )
    return {host: bool(mapped) for host, mapped in rows}


# -- the rule: only the store writes the index ------------------------------------------


def test_every_index_write_of_the_operator_verbs_comes_from_the_store(
    conf: cfg.ConfigOpts,
    make_cells: MakeCells,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    tmp_path: Path,
    index_writes: list[tuple[str, str]],
) -> None:
    """Runs every verb and record method that writes, and checks who executed each write."""
    local = f"sqlite:///{tmp_path / 'local.db'}"
    migration.sync("cell", local)
    conf.set_override("connection", local, group="database")
    conf.set_override("transport_url", "fake://local/")
    commands.map_cell0(f"sqlite:///{tmp_path / 'cell0.db'}")
    big, small = make_cells(2)
    _add_nodes(big, "h1", "h2")
    for _ in range(3):
        make_instance(big, mapped=False, deleted=1)
    commands.discover_hosts()
    commands.map_instances(big.uuid)
    commands.map_instances(big.uuid, reset=True)
    commands.update_cell(small.uuid, name="renamed", disable=True)
    commands.delete_host(big.uuid, "h2")
    commands.delete_cell(big.uuid, force=True)
    _add_nodes(local, "h3")
    commands.simple_cell_setup()

    building = InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="p")
    placed = building.set_cell(admin_ctx, small).set_queued_for_delete(admin_ctx)
    placed.destroy(admin_ctx)
    InstanceMapping.destroy_many(admin_ctx, [new_uuid()])
    HostMapping.create(admin_ctx, host="h9", cell_mapping=small).destroy(admin_ctx)
    BuildRequest.create(admin_ctx, instance_uuid=new_uuid(), project_id="p").destroy(admin_ctx)
    small.destroy(admin_ctx)

    assert {table for table, _ in index_writes} == set(INDEX_TABLES)
    outside = sorted({(table, module) for table, module in index_writes if module != STORE_MODULE})
    assert outside == [], f"index tables written outside {STORE_MODULE}: {outside}"


def test_the_write_recorder_names_a_rogue_module(
    api_db: str, index_writes: list[tuple[str, str]]
) -> None:
    """The rule above would catch a module that writes the index itself."""
    rogue: dict[str, Any] = {"__name__": "cellrouter.manage.rogue", "sa": sa}
    exec(
        "def unmap_all(engine, table):\n"
        "    with engine.begin() as conn:\n"
        "        conn.execute(sa.delete(table))\n",
        rogue,
    )
    rogue["unmap_all"](api_engine(), host_mappings)
    assert index_writes == [("host_mappings", "cellrouter.manage.rogue")]


def _table_names(tree: ast.Module) -> set[str]:
    """Names bound to an index table in a module (imported as, or assigned from, one)."""
    names = set(INDEX_TABLES)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names |= {a.asname for a in node.names if a.name in INDEX_TABLES and a.asname}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            if node.value.id in names:
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def index_writes_in_source(source: str) -> list[int]:
    """Lines of ``source`` that build a write on an index table (any usual spelling)."""
    tree = ast.parse(source)
    tables = _table_names(tree)

    def is_table(node: ast.AST) -> bool:
        return isinstance(node, ast.Name | ast.Attribute) and (
            getattr(node, "id", None) in tables or getattr(node, "attr", None) in tables
        )

    prose = {  # docstrings and other bare strings: never executed
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
    }
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in prose and _WRITE_TEXT.search(node.value):
                lines.append(node.lineno)
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        args = node.args
        if name in ("insert", "update", "delete"):
            target = args[0] if args else (func.value if isinstance(func, ast.Attribute) else None)
            if target is not None and is_table(target):
                lines.append(node.lineno)
        elif name == "insert_ignore" and len(args) > 1 and is_table(args[1]):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_no_module_but_the_store_writes_index_tables_in_its_source() -> None:
    """The same rule, on code paths no test runs: every module of the package is read."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() == "index/store.py":
            continue
        lines = index_writes_in_source(path.read_text())
        if lines:
            found[path.relative_to(PACKAGE).as_posix()] = lines
    assert found == {}, f"modules writing the mapping tables (only index/store.py may): {found}"


def test_the_source_scan_sees_the_usual_spellings_of_a_write() -> None:
    store_source = (PACKAGE / "index" / "store.py").read_text()
    assert len(index_writes_in_source(store_source)) >= 10
    rogue = (
        "import sqlalchemy as sa\n"
        "from cellrouter.db.api_schema import instance_mapping_markers as marks, host_mappings\n"
        "from cellrouter.db import bulk\n"
        "hm = host_mappings\n"
        "sa.delete(marks)\n"
        "hm.update()\n"
        "bulk.insert_ignore(conn, hm, rows, hm.c.host)\n"
        "sa.text('DELETE FROM cell_mappings WHERE id = 1')\n"
        "sa.insert(schema.build_requests)\n"
        "sa.select(host_mappings)\n"
        "'''Docstring: DELETE FROM cell_mappings is what the store does.'''\n"
    )
    assert index_writes_in_source(rogue) == [5, 6, 7, 8, 9]


# -- one transaction: bump, hooks inside, notices after commit ----------------------------


def test_notice_comes_after_commit_and_never_for_a_rolled_back_write(
    make_cells: MakeCells, api_db: str, changes: list[Change]
) -> None:
    (existing,) = make_cells(1)
    seen_by_others: list[set[str]] = []

    def look(kind: str, keys: tuple[str, ...]) -> None:
        seen_by_others.append(_cell_names(api_db))

    events.subscribe(look)  # type: ignore[arg-type]
    try:
        changes.clear()
        cell = STORE.create_cell(
            name="committed", database_connection="sqlite://", transport_url="fake://c/"
        )
        assert changes == [("cell", (cell.uuid,))]
        assert "committed" in seen_by_others[0]  # committed before the listener ran

        with pytest.raises(exception.CellMappingExists):
            STORE.create_cell(
                uuid=existing.uuid, database_connection="sqlite://", transport_url="fake://d/"
            )
        with pytest.raises(exception.CellMappingNotFound):
            STORE.update_cell(CellMapping(-1, new_uuid(), "ghost", "", ""), {"name": "x"})
        assert changes == [("cell", (cell.uuid,))]
    finally:
        events.unsubscribe(look)  # type: ignore[arg-type]


def test_hook_sees_the_uncommitted_write_inside_the_transaction(
    api_db: str, hooks: Callable[[Callable[..., None]], None]
) -> None:
    inside: list[tuple[str, tuple[str, ...], Any, set[str], int]] = []

    def hook(conn: sa.Connection, kind: str, keys: tuple[str, ...]) -> None:
        own = conn.execute(sa.select(cell_mappings.c.name)).scalars().all()
        generation = conn.execute(sa.select(cell_generation.c.generation)).scalar_one()
        inside.append((kind, keys, own, _cell_names(api_db), generation))

    before = STORE.generation()
    hooks(hook)
    cell = STORE.create_cell(name="new", database_connection="sqlite://", transport_url="fake://")
    [(kind, keys, own, others, generation)] = inside
    assert (kind, keys) == ("cell", (cell.uuid,))
    assert own == ["new"]  # the hook's connection is the write's: it sees the row
    assert others == set()  # nobody else does yet
    assert generation == before + 1  # the bump came first, in the same transaction


def test_failing_hook_rolls_the_write_back_and_sends_no_notice(
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    hooks: Callable[[Callable[..., None]], None],
    changes: list[Change],
) -> None:
    (cell,) = make_cells(1)
    generation = STORE.generation()
    changes.clear()

    def veto(conn: sa.Connection, kind: str, keys: tuple[str, ...]) -> None:
        raise RuntimeError(f"vetoed {kind}")

    hooks(veto)
    with pytest.raises(RuntimeError, match="vetoed cell"):
        STORE.create_cell(name="never", database_connection="sqlite://", transport_url="fake://")
    with pytest.raises(RuntimeError, match="vetoed cell"):
        cell.update(admin_ctx, name="never")
    with pytest.raises(RuntimeError, match="vetoed instance"):
        STORE.create_instances(cell, [NewInstanceMapping(new_uuid(), "p") for _ in range(3)])
    assert [c.name for c in STORE.cells()] == [cell.name]
    assert STORE.count_instances(cell.uuid) == 0
    assert STORE.generation() == generation
    assert changes == []


def test_failing_hook_leaves_the_cell_database_alone_too(
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    hooks: Callable[[Callable[..., None]], None],
) -> None:
    """Hooks run before the cell step of an unmapping: a veto changes nothing anywhere."""
    (cell,) = make_cells(1)
    _add_nodes(cell, "h1", mapped=True)
    HostMapping.create(admin_ctx, host="h1", cell_mapping=cell)

    def veto(conn: sa.Connection, kind: str, keys: tuple[str, ...]) -> None:
        raise RuntimeError("vetoed")

    hooks(veto)
    with pytest.raises(RuntimeError):
        commands.delete_host(cell.uuid, "h1")
    assert STORE.host("h1").cell_mapping.uuid == cell.uuid
    assert _node_flags(cell) == {"h1": True}


def test_bulk_writes_notify_once_with_all_their_keys(
    make_cells: MakeCells,
    admin_ctx: RequestContext,
    hooks: Callable[[Callable[..., None]], None],
    changes: list[Change],
) -> None:
    cell, other = make_cells(2)
    hooked: list[Change] = []
    hooks(lambda conn, kind, keys: hooked.append((kind, keys)))
    _add_nodes(cell, "h3", "h1", "h2")
    uuids = [new_uuid() for _ in range(4)]
    changes.clear()

    inserted, mapped = STORE.map_hosts(cell, ["h1", "h2", "h3"])
    created = STORE.create_instances(cell, [NewInstanceMapping(u, "p") for u in uuids[:2]])
    batch, marker = STORE.map_instance_batch(
        cell, 7, [NewInstanceMapping(u, "p", queued_for_delete=True) for u in uuids]
    )
    unknown = new_uuid()
    moved = STORE.set_instances_cell([*uuids, unknown], other)
    removed = STORE.delete_instances([*uuids[:3], uuids[0]])
    assert (inserted, mapped) == (["h1", "h2", "h3"], dict.fromkeys(["h1", "h2", "h3"], cell.uuid))
    assert (created, batch, marker, moved, removed) == (uuids[:2], uuids[2:], 7, 4, 3)
    expected = [
        ("host", ("h1", "h2", "h3")),
        ("instance", tuple(uuids[:2])),
        ("instance", tuple(uuids[2:])),
        ("instance", (*uuids, unknown)),  # as asked: a notice may name more than it hit
        ("instance", tuple(uuids[:3])),
    ]
    assert changes == expected
    assert hooked == expected

    changes.clear()
    hooked.clear()
    assert STORE.map_hosts(cell, ["h1", "h2"]) == ([], dict.fromkeys(["h1", "h2"], cell.uuid))
    assert STORE.create_instances(cell, [NewInstanceMapping(uuids[3], "p")]) == []
    assert STORE.delete_instances([new_uuid()]) == 0
    assert changes == hooked == []  # nothing written: nothing to tell


def test_forced_cell_delete_notifies_every_mapping_it_removed(
    make_cells: MakeCells,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    changes: list[Change],
) -> None:
    cell, other = make_cells(2)
    _add_nodes(cell, "h1", "h2", mapped=True)
    STORE.map_hosts(cell, ["h1", "h2"])
    gone = sorted(make_instance(cell, deleted=1) for _ in range(3))
    kept = make_instance(other)
    changes.clear()

    result = commands.delete_cell(cell.uuid, force=True)

    assert (result.instance_mappings, result.host_mappings) == (3, 2)
    kinds = {kind: keys for kind, keys in changes}
    assert [kind for kind, _ in changes] == ["instance", "host", "cell"]
    assert sorted(kinds["instance"]) == gone and sorted(kinds["host"]) == ["h1", "h2"]
    assert kinds["cell"] == (cell.uuid,)
    assert _node_flags(cell) == {"h1": False, "h2": False}
    assert STORE.instance(kept).cell_uuid == other.uuid


# -- generation -----------------------------------------------------------------------


def test_generation_moves_with_every_cell_write_and_only_then(
    make_cells: MakeCells, admin_ctx: RequestContext, api_db: str
) -> None:
    start = STORE.generation()
    (cell,) = make_cells(1)
    assert STORE.generation() == start + 1
    cell = cell.update(admin_ctx, disabled=True)
    assert cell.update(admin_ctx) is cell  # no change: no write
    assert STORE.generation() == start + 2
    InstanceMapping.create(admin_ctx, instance_uuid=new_uuid(), project_id="p", cell_mapping=cell)
    HostMapping.create(admin_ctx, host="h", cell_mapping=cell)
    STORE.map_hosts(cell, ["h", "h2"])
    assert STORE.generation() == start + 2
    with pytest.raises(exception.CellHasHosts):
        cell.destroy(admin_ctx)  # refused: rolled back, no bump
    assert STORE.generation() == start + 2
    commands.delete_cell(cell.uuid, force=True)
    assert STORE.generation() == start + 3
    # every process sees it: it lives in the API database
    assert _other_connection(api_db, sa.select(cell_generation.c.generation)) == [(start + 3,)]


def test_generation_row_deleted_by_hand_comes_back_on_the_next_cell_write(
    make_cells: MakeCells, api_db: str
) -> None:
    with api_engine().begin() as conn:
        conn.execute(sa.delete(cell_generation))
    assert STORE.generation() == 0
    make_cells(2)
    assert STORE.generation() == 2


def test_generation_revision_seeds_the_row_and_downgrades_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    assert migration.sync("api", url, "api_0003") == (None, "api_0003")
    assert _other_connection(url, sa.select(cell_generation)) == [(1, 0)]
    assert migration.sync("api", url, "api_0002") == ("api_0003", "api_0002")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "cell_generation" not in tables and "instance_mapping_markers" in tables


# -- the read contract -------------------------------------------------------------------


def test_the_store_answers_the_read_contract_like_the_record_classmethods(
    make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: RequestContext
) -> None:
    index: MappingIndex = mapping_store()
    assert index is STORE and isinstance(STORE, MappingStore)
    cell0 = CellMapping.create(
        admin_ctx,
        uuid=cellrouter.CELL0_UUID,
        database_connection="sqlite://",
        transport_url="none:///",
    )
    cell, disabled = make_cells(1) + make_cells(1, disabled=True)
    iuuid = make_instance(cell)
    host = HostMapping.create(admin_ctx, host="h", cell_mapping=cell)
    build = BuildRequest.create(admin_ctx, instance_uuid=new_uuid(), project_id="p")

    assert index.cell(cell.uuid) == CellMapping.get_by_uuid(admin_ctx, cell.uuid) == cell
    assert list(index.cells()) == CellMapping.get_all(admin_ctx) == [cell0, cell, disabled]
    assert index.instance(iuuid) == InstanceMapping.get_by_instance_uuid(admin_ctx, iuuid)
    assert list(index.instances([iuuid, iuuid, new_uuid()])) == [index.instance(iuuid)]
    assert index.host("h") == HostMapping.get_by_host(admin_ctx, "h") == host
    assert index.build_request(build.instance_uuid) == build
    assert isinstance(index.generation(), int)
    for missing, error in (
        (index.cell, exception.CellMappingNotFound),
        (index.instance, exception.InstanceMappingNotFound),
        (index.host, exception.HostMappingNotFound),
        (index.build_request, exception.BuildRequestNotFound),
    ):
        with pytest.raises(error):
            missing(new_uuid())
    counts = STORE.counts_by_cell()
    assert counts == {cell.id: (1, 1)}
    assert (STORE.count_hosts(cell.uuid), STORE.count_instances(cell.uuid)) == (1, 1)


# -- the cell-then-API protocol -------------------------------------------------------------


def test_cell_step_commits_before_the_api_transaction(make_cells: MakeCells, api_db: str) -> None:
    (cell,) = make_cells(1)
    _add_nodes(cell, "h1", mapped=True)
    api_seen_during_step: list[set[str]] = []
    reset = sa.update(compute_nodes).values(mapped=False)

    def run(conn: sa.Connection) -> None:
        conn.execute(reset)
        api_seen_during_step.append(_cell_names(api_db))

    engine = sa.create_engine(cell.database_connection, poolclass=sa.pool.NullPool)
    try:
        with cell_then_api(api_engine(), CellStep(cell.identity, engine, run)) as conn:
            conn.execute(sa.update(cell_mappings).values(name="renamed"))
    finally:
        engine.dispose()
    assert api_seen_during_step == [{cell.name}]  # the API change was not committed yet
    assert _cell_names(api_db) == {"renamed"}
    assert _node_flags(cell) == {"h1": False}


def test_failing_cell_step_rolls_the_api_transaction_back(
    make_cells: MakeCells, api_db: str, tmp_path: Path
) -> None:
    (cell,) = make_cells(1)
    dead = sa.create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    step = CellStep("dead(1234)", dead, lambda conn: conn.execute(sa.text("SELECT 1")))
    with pytest.raises(exception.CellUnavailable, match="dead"):
        with cell_then_api(api_engine(), step) as conn:
            conn.execute(sa.update(cell_mappings).values(name="renamed"))
    dead.dispose()
    assert _cell_names(api_db) == {cell.name}


def test_use_store_puts_another_store_behind_the_classmethods(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    asked: list[str] = []

    class Counting(MappingStore):
        def cell(self, cell_uuid: str) -> CellMapping:
            asked.append(cell_uuid)
            return super().cell(cell_uuid)

        def cells(self) -> list[CellMapping]:
            asked.append("every cell")
            return super().cells()

    previous = use_store(Counting())
    try:
        CACHED_INDEX.reset()  # the cached index reads the cell list from the store in use
        assert CellMapping.get_by_uuid(admin_ctx, cell.uuid) == cell
        assert commands.list_hosts(cell.uuid) == []
    finally:
        assert use_store(STORE) is not STORE
    assert previous is STORE and mapping_store() is STORE
    assert asked == ["every cell", cell.uuid]
