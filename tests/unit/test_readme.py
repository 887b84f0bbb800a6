"""The README's two opening commands are the project's front door: keep them working."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _literal_commands() -> list[str]:
    """The indented command lines of the README's opening literal blocks."""
    lines = (ROOT / "README.rst").read_text().splitlines()
    return [line.strip() for line in lines[:40] if line.startswith("    pip install")]


def test_readme_opens_with_demo_and_test_commands() -> None:
    demo, tests, operator = _literal_commands()[:3]
    assert demo == "pip install -e . && cellrouter-demo"  # run by tests/reference/test_demo.py
    assert tests == "pip install -e '.[test]' && pytest -q tests"
    assert "cellrouter-manage" in operator
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest -q tests" in ci


def test_readme_operator_command_runs_twice(tmp_path: pathlib.Path) -> None:
    demo = _literal_commands()[2]
    install, _, rest = demo.partition(" && ")
    assert install == "pip install -e ."
    (tmp_path / "etc" / "cellrouter").mkdir(parents=True)
    shutil.copy(ROOT / "etc" / "cellrouter" / "demo.conf", tmp_path / "etc" / "cellrouter")
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}")
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            ["bash", "-c", rest], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    assert "base -> api_" in outputs[0] and "already at api_" in outputs[1]
    assert "cell0" in outputs[1] and "cell1" in outputs[1]
    assert "All 2 cell(s) reachable." in outputs[1]
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "cellrouter-demo-api.db",
        "cellrouter-demo-cell1.db",
        "cellrouter-demo-cell1_cell0.db",
    ]


def test_architecture_section_names_every_module_and_folder() -> None:
    readme = (ROOT / "README.rst").read_text()
    architecture = readme[readme.index("Architecture\n---") :]
    package = ROOT / "cellrouter"
    modules = sorted(
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if p.name != "__init__.py" or p.parent == package
    )
    folders = sorted(
        p.relative_to(package).as_posix() + "/"
        for p in package.iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    )
    missing = [m for m in modules + folders if f"``cellrouter/{m}``" not in architecture]
    assert not missing, f"README.rst's Architecture section does not map: {missing}"
    named = set(re.findall(r"``cellrouter/([\w/]+\.py)``", architecture))
    assert named <= set(modules), f"README.rst names modules that are gone: {named - set(modules)}"
