"""The runtime: one reset, one fork hook, and an import graph without cycles."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest
from oslo_config import cfg

import cellrouter
from cellrouter import clock, runtime
from cellrouter.across import health
from cellrouter.cells import registry
from cellrouter.index.cached_index import CACHED_INDEX

PACKAGE = Path(cellrouter.__file__).resolve().parent
#: The folders in layer order: a module may import its own folder, the folders
#: before it, and the top-level modules (never runtime or the package itself).
LAYERS = ("db", "index", "cells", "across", "manage", "reference")
#: Top-level modules that sit above every folder.
ON_TOP = ("cellrouter", "cellrouter.runtime")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every import between cellrouter modules, late (in-function) ones included,
    ``if TYPE_CHECKING:`` ones excluded."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {
            id(node)
            for branch in ast.walk(tree)
            if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
            for node in ast.walk(branch)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _layer(module: str) -> int:
    """-1 for top-level modules, the folder's position otherwise."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 or parts[-1] in LAYERS else -1


def test_the_package_has_no_import_cycle() -> None:
    graph = {name: edges - {"cellrouter"} for name, edges in import_graph().items()}
    graph = {name: edges for name, edges in graph.items() if name != "cellrouter"}
    assert cycles(graph) == []


def test_imports_follow_the_layers() -> None:
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in import_graph().items()
        if name not in ON_TOP
        for target in targets
        if target in ON_TOP[1:] or _layer(target) > _layer(name)
    )
    assert upward == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_one_fork_hook_for_the_whole_package() -> None:
    hooks = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "register_at_fork"
    ]
    assert hooks == ["runtime.py"]


def test_setup_resets_what_the_old_configuration_built(
    conf: cfg.ConfigOpts, make_cells: object, admin_ctx: cellrouter.RequestContext
) -> None:
    (cell,) = make_cells(1)  # type: ignore[operator]
    registry.get(cell)
    health.record_failure(cell, None)
    CACHED_INDEX.cells()
    assert registry.cell_uuids() and cell.uuid in health.cell_health()
    cellrouter.setup([], default_config_files=[])
    assert registry.cell_uuids() == [] and health.cell_health() == {}


def test_the_runtime_knows_its_parts(conf: cfg.ConfigOpts) -> None:
    rt = runtime.current()
    assert rt.conf is conf
    assert rt.registry is registry and rt.health is health and rt.cached is CACHED_INDEX
    assert rt.clock is clock.current()
    assert rt.index.cells is not None
    alive, idle = rt.workers
    assert alive >= idle >= 0


def test_health_reads_the_runtime_clock(conf: cfg.ConfigOpts, make_cells: object) -> None:
    conf.set_override("cell_down_interval", 30, group="cells")
    (cell,) = make_cells(1)  # type: ignore[operator]

    class Frozen(clock.Clock):
        now = 1000.0

        def monotonic(self) -> float:  # type: ignore[override]
            return self.now

    frozen = Frozen()
    previous = clock.use(frozen)
    try:
        health.record_failure(cell, None)
        assert health.down_cells()[cell.uuid] == 1030.0  # next probe: now + interval
        frozen.now = 1031.0
        assert health.cell_health()[cell.uuid].next_probe_at is not None
    finally:
        clock.use(previous)
        health.reset()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_starts_empty(conf: cfg.ConfigOpts, make_cells: object) -> None:
    (cell,) = make_cells(1)  # type: ignore[operator]
    registry.get(cell)
    health.record_failure(cell, None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it inherited, then leave at once
        os.close(read)
        state = (len(registry.cell_uuids()), len(health.cell_health()))
        os.write(write, repr(state).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_state = pipe.read()
    os.waitpid(pid, 0)
    assert child_state == "(0, 0)"
    assert registry.cell_uuids() == [cell.uuid]  # the parent keeps its own
    sys.stdout.flush()
