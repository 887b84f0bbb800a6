"""Locks a forked child gets fresh.

A ``threading.Lock`` that another thread held at ``fork()`` stays held forever
in the child. Module-level locks that guard slow paths (building engines,
transports, cell lists) are made with :func:`lock` instead; one fork hook
renews them all in the child.
"""

from __future__ import annotations

import threading
import weakref
from types import TracebackType

__all__ = ["Lock", "renew_after_fork"]


class Lock:
    """A mutex (``with lock:``) that is replaced by an unheld one in a forked child."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _all.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


_all: weakref.WeakSet[Lock] = weakref.WeakSet()


def renew_after_fork() -> None:
    """In a forked child: every lock made here, unheld (the runtime's fork hook calls this)."""
    for lock in list(_all):
        lock._lock = threading.Lock()
