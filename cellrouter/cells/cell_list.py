"""The list of all cells, cached in-process for a few seconds.

Every all-cells scatter needs it; reading ``cell_mappings`` each time would
cost an API database round trip per request. A cell write in this process
drops the cache at once (the runtime subscribes :func:`on_mapping_changed`
to the index's notices); writes by other processes are seen within
:data:`TTL` seconds. Each refresh also releases the pooled connections of
cells that are no longer mapped.
"""

from __future__ import annotations

import time
from typing import Final

from cellrouter import forksafe
from cellrouter.cells import registry
from cellrouter.conf import get_conf
from cellrouter.index.cell_mapping import CellMapping

__all__ = ["TTL", "get_all", "invalidate", "on_mapping_changed"]

#: Seconds a fetched cell list is reused.
TTL: Final = 5.0

# (API database URL, monotonic expiry, cells); replaced whole, read without a lock.
_cache: tuple[str | None, float, tuple[CellMapping, ...]] | None = None
_generation = 0
_lock = forksafe.Lock()


def get_all(ctx: object) -> tuple[CellMapping, ...]:
    """Every mapped cell (cell0 included, disabled ones too), at most TTL seconds old."""
    global _cache
    api_url = get_conf().api_database.connection
    cached = _cache
    if cached is not None and cached[0] == api_url and time.monotonic() < cached[1]:
        return cached[2]
    generation = _generation
    cells = tuple(CellMapping.get_all(ctx))
    with _lock:
        if generation == _generation:  # no cell write happened while we read
            _cache = (api_url, time.monotonic() + TTL, cells)
    registry.retain_only(cell.uuid for cell in cells)
    return cells


def invalidate() -> None:
    """Forget the cached list: the next call reads the API database."""
    global _cache, _generation
    with _lock:
        _generation += 1
        _cache = None


def on_mapping_changed(kind: str, keys: tuple[str, ...]) -> None:
    """A cell was written in this process: the next call reads the API database."""
    if kind == "cell":
        invalidate()
