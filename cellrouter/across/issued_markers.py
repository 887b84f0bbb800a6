"""The markers a lister handed out, remembered with their rows' cells and sort values.

A page after a marker starts from the marker row's sort values, which cost a
read in the marker's cell (a thread hand-off, a query, on a server a round
trip) before the page's own reads can start. When the page is sorted only on
columns whose values never change once a row exists (the lister's
``fixed_keys``: ``created_at``, ``uuid``), the values the previous page ended
on are still the row's values when its marker comes back, so a page that
follows one this process served skips that read.

Bounded (:data:`MARKERS_KEPT`, the oldest forgotten first); reads take no
lock. A row purged since its marker was handed out is not noticed here (a
lister that must notice checks what it can first: the instance lister checks
the marker's mapping, which archiving deletes).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from cellrouter import forksafe

__all__ = ["MARKERS_KEPT", "IssuedMarkers"]

#: markers remembered per lister (~0.3 KB each)
MARKERS_KEPT = 4096


class IssuedMarkers:
    """marker (with the sort keys it was handed out for) -> (its cell's uuid, sort values)."""

    __slots__ = ("_lock", "_size", "_values")

    def __init__(self, size: int = MARKERS_KEPT) -> None:
        self._values: OrderedDict[tuple[str, tuple[str, ...]], tuple[str, tuple[Any, ...]]]
        self._values = OrderedDict()
        self._size = size
        self._lock = forksafe.Lock()

    def get(self, marker: str, keys: tuple[str, ...]) -> tuple[str, tuple[Any, ...]] | None:
        """(cell uuid, sort values) of ``marker`` handed out for ``keys``; None if unknown."""
        return self._values.get((marker, keys))

    def remember(
        self, marker: str, keys: tuple[str, ...], cell_uuid: str, values: tuple[Any, ...]
    ) -> None:
        """``marker`` was handed out for ``keys``; its row is in ``cell_uuid``, at ``values``."""
        key = (marker, keys)
        with self._lock:
            self._values[key] = (cell_uuid, values)
            while len(self._values) > self._size:
                self._values.popitem(last=False)

    def clear(self) -> None:
        """Forget every marker (the rows were replaced behind the lister's back)."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
