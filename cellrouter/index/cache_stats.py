"""Counters of the mapping cache and the live cell list, readable by services
and shown by ``cellrouter-manage cell_v2 status --verbose``.

Counting is lock-free: each counter is an :func:`itertools.count`, whose
``next()`` is atomic under the GIL, so hits on the hot path never take a lock
and concurrent increments are never lost.
"""

from __future__ import annotations

import itertools
from typing import Literal, NamedTuple

from cellrouter import forksafe

__all__ = ["CacheStats", "Counter", "count", "reset", "stats"]

Counter = Literal["hits", "misses", "invalidations", "errors", "refreshes"]


class CacheStats(NamedTuple):
    """What this process's mapping cache and cell list did since start (or reset)."""

    #: lookups answered from the cache
    hits: int
    #: lookups the cache could not answer (sent to the API database)
    misses: int
    #: cache keys dropped because a mapping write changed their answer
    invalidations: int
    #: cache backend operations that failed (each time, lookups went direct)
    errors: int
    #: cell list reloads (the cell generation moved, or reload() was called)
    refreshes: int


_FIELDS: tuple[Counter, ...] = CacheStats._fields  # type: ignore[assignment]
_counters: dict[str, itertools.count[int]] = {}
_lock = forksafe.Lock()


def reset() -> None:
    """Start every counter again from zero."""
    global _counters
    with _lock:
        _counters = {name: itertools.count() for name in _FIELDS}


def count(name: Counter, n: int = 1) -> None:
    """Add ``n`` to counter ``name``."""
    counter = _counters[name]
    if n == 1:
        next(counter)
        return
    for _ in range(n):
        next(counter)


def _value(counter: itertools.count[int]) -> int:
    # count(N) is the repr of a counter whose next value is N: the number of
    # increments so far. Reading it does not advance the counter.
    return int(repr(counter)[6:-1])


def stats() -> CacheStats:
    """The counters now."""
    current = _counters
    return CacheStats(*(_value(current[name]) for name in _FIELDS))


reset()
