"""The reference deployment is built on cellrouter's public names only."""

from __future__ import annotations

import ast
from pathlib import Path

import cellrouter
import cellrouter.reference

REFERENCE = Path(cellrouter.reference.__file__).resolve().parent
PUBLIC = set(cellrouter.__all__)
#: modules besides the package itself that the reference may import
ALLOWED_MODULES = {"cellrouter", "cellrouter.exception"}


def violations(source: str) -> list[str]:
    """Every import of a non-public cellrouter module or name, and every use of
    ``cellrouter.<name>`` that is not in ``cellrouter.__all__``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                if name.startswith("cellrouter") and not _allowed_module(name):
                    found.append(f"import {name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if node.level or not module.startswith("cellrouter"):
                continue
            if module == "cellrouter":
                found += [
                    f"from cellrouter import {a.name}" for a in node.names if a.name not in PUBLIC
                ]
            elif not _allowed_module(module):
                found.append(f"from {module} import ...")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "cellrouter"
            and node.attr not in PUBLIC
        ):
            found.append(f"cellrouter.{node.attr}")
    return found


def _allowed_module(name: str) -> bool:
    return name in ALLOWED_MODULES or name.startswith("cellrouter.reference")


def test_reference_modules_use_public_names_only() -> None:
    modules = sorted(REFERENCE.glob("*.py"))
    assert {p.name for p in modules} >= {"api.py", "conductor.py", "compute.py", "demo.py"}
    problems = {p.name: violations(p.read_text()) for p in modules}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_check_finds_private_imports() -> None:
    source = (
        "import cellrouter\n"
        "import cellrouter.db.database\n"
        "from cellrouter.cells import registry\n"
        "from cellrouter import target_cell, messaging\n"
        "from cellrouter.exception import NotFound\n"
        "from cellrouter.reference.flavors import FLAVORS\n"
        "cellrouter.get_instance\n"
        "cellrouter.runtime\n"
    )
    assert violations(source) == [
        "import cellrouter.db.database",
        "from cellrouter.cells import ...",
        "from cellrouter import messaging",
        "cellrouter.runtime",
    ]
