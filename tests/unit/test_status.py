"""cell_v2 status probes: a probe that crashes says why, in its own cell's row."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cellrouter.across import probes as status
from cellrouter.index.cell_mapping import CellMapping


def test_a_crashing_probe_reports_its_error_not_a_timeout(
    make_cells: Callable[..., list[CellMapping]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = make_cells(2)

    def broken(url: str, timeout: float) -> status.Probe:
        raise ImportError("cannot import name 'Connection'")

    monkeypatch.setattr(status, "probe_queue", broken)
    probes = status.probe_cells(cells, timeout=1.0)
    assert [p.cell.uuid for p in probes] == [c.uuid for c in cells]
    for probe in probes:
        assert probe.database.state == "ok"  # the other probe of the cell still counts
        assert probe.queue.state == "unreachable"
        assert "cannot import name" in (probe.queue.error or "")
        assert "no answer" not in (probe.queue.error or "")
