"""The committed sample configuration matches what oslo-config-generator makes now."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATOR_CONF = ROOT / "etc" / "cellrouter" / "cellrouter-config-generator.conf"
SAMPLE = ROOT / "etc" / "cellrouter" / "cellrouter.conf.sample"


def _generator_command() -> list[str]:
    # The generator of the running interpreter's environment: it sees this
    # checkout's ``oslo.config.opts`` entry point.
    script = Path(sys.executable).parent / "oslo-config-generator"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "oslo_config.generator"]


def test_sample_config_is_up_to_date(tmp_path: Path) -> None:
    fresh = tmp_path / "cellrouter.conf.sample"
    result = subprocess.run(
        [
            *_generator_command(),
            "--config-file",
            str(GENERATOR_CONF),
            "--output-file",
            str(fresh),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"oslo-config-generator failed:\n{result.stderr}"
    assert SAMPLE.exists(), f"{SAMPLE.relative_to(ROOT)} is missing: run `tox -e genconfig`"

    expected = fresh.read_text()
    committed = SAMPLE.read_text()
    if committed != expected:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                fromfile="committed",
                tofile="generated",
            )
        )
        raise AssertionError(
            f"{SAMPLE.relative_to(ROOT)} is out of date with cellrouter/conf.py: "
            f"run `tox -e genconfig` and commit the result.\n{diff}"
        )


def test_sample_config_lists_every_group() -> None:
    from cellrouter import conf

    text = SAMPLE.read_text()
    for group, _opts in conf.list_opts():
        assert f"[{group}]" in text, f"[{group}] missing: run `tox -e genconfig`"
