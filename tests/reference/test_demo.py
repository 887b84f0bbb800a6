"""The README's first command: the demo runs to completion, twice, and prints each step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STEPS = (
    "Set up the API database, cell0 and cell1, cell2",
    "discover_hosts mapped 6 new host(s)",
    "Boot 60 servers over HTTP",
    "60/60",
    "too big for any host -> cell0",
    "List across the cells: sorted by name, 50 per page",
    "60 servers in 2 pages",
    "API auth: noauth: a request without X-Project-Id is project 'demo'",
    "Each project lists only its own servers (project-0 and project-1",
    "project-0: 30 servers, all its own; with project_id=project-1: still its own 30",
    "project-1: 30 servers, all its own; with project_id=project-0: still its own 30",
    "server: 404; GET /cells: 403",
    "ERROR in cell0: No valid host",
    "fails on purpose",
    "Delete 6 servers",
    "54 servers left",
    "Make cell2 unreachable",
    "partial=True",
    "UNKNOWN stand-ins",
    "Report",
    "Done in",
)


def test_the_demo_runs_twice_and_shows_every_step(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for run in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "cellrouter.reference.demo", "--servers", "60"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        missing = [step for step in STEPS if step not in proc.stdout]
        assert not missing, f"run {run + 1} did not show {missing}:\n{proc.stdout}"
    workdir = tmp_path / "cellrouter-demo"
    assert sorted(p.name for p in workdir.glob("*.db")) == [
        "api.db",
        "cell0.db",
        "cell1.db",
        "cell2.db",
    ]


def test_demo_bad_arguments_exit_2(tmp_path: Path) -> None:
    for args in (["--servers", "3"], ["--mysql", "mysql+pymysql://x/"]):
        proc = subprocess.run(
            [sys.executable, "-m", "cellrouter.reference.demo", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
