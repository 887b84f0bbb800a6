"""The built wheel carries both migration trees inside ``cellrouter`` and they work from it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_migrations_as_package_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("cellrouter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"cellrouter"}, tops  # no top-level migrations_* packages
    for tier in ("api", "cell"):
        assert f"cellrouter/migrations_{tier}/env.py" in names
        assert f"cellrouter/migrations_{tier}/script.py.mako" in names
        assert any(
            n.startswith(f"cellrouter/migrations_{tier}/versions/{tier}_0001") for n in names
        )
    assert "cellrouter/py.typed" in names

    # Migrate from the unpacked wheel, not from this checkout.
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    script = (
        "import cellrouter, sys\n"
        f"assert cellrouter.__file__.startswith({str(unpacked)!r}), cellrouter.__file__\n"
        "for tier in ('api', 'cell'):\n"
        f"    url = 'sqlite:///{tmp_path}/' + tier + '.db'\n"
        "    print(cellrouter.sync_schema(tier, url))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(None, 'api_" in proc.stdout and "(None, 'cell_" in proc.stdout
