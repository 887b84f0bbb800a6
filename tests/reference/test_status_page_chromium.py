"""A headless Chromium loads the status page and finds every cell on it.

Chromium is a system package (``apt-get install chromium``); without it the
test skips, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cellrouter.reference.deployment import EmbeddedDeployment

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    message = f"no headless Chromium on PATH (looked for {', '.join(BROWSERS)})"
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(message + "; CI=true: install the chromium package", pytrace=False)
    pytest.skip(message)


def test_chromium_finds_every_cell_on_the_status_page(
    embedded: EmbeddedDeployment, tmp_path: Path
) -> None:
    browser = _browser()
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            embedded.url + "/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    rows = re.findall(r'<tr class="cell" data-uuid="([0-9a-f-]{36})">(.*?)</tr>', dom, re.S)
    assert {uuid for uuid, _ in rows} == {cell.uuid for cell in embedded.cells.values()}
    for uuid, row in rows:
        name = next(cell.name for cell in embedded.cells.values() if cell.uuid == uuid)
        assert f"<td>{name}</td>" in row and '<td class="up">up</td>' in row
