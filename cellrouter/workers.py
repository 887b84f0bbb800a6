"""The worker threads every background job of cellrouter runs on.

Scatter-gather (one job per cell), health probes and bounded RPC sends all
submit here. The pool is elastic: an idle thread is reused, a new one starts
when none is idle (so a job that hangs never delays or starves later ones),
and threads idle for :data:`IDLE_SECONDS` retire. Jobs must not raise: they
report their own outcome. A forked child starts with an empty pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["IDLE_SECONDS", "renew_after_fork", "stats", "submit"]

LOG = logging.getLogger(__name__)

#: Seconds an idle worker thread waits for a job before it retires.
IDLE_SECONDS: Final = 60.0


class _Worker:
    """One pool thread's mailbox: a job slot and the lock it sleeps on."""

    __slots__ = ("job", "wake")

    def __init__(self, job: Callable[[], None]) -> None:
        self.job: Callable[[], None] | None = job
        self.wake = threading.Lock()
        self.wake.acquire()


class _Pool:
    """Elastic daemon threads: reuse an idle one, else start one; idle ones retire."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the most recently idle runs next
        self.threads = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                self.threads += 1
        if worker is not None:
            worker.job = job
            worker.wake.release()
            return
        worker = _Worker(job)
        threading.Thread(
            target=self._run, args=(worker,), name="cellrouter-worker", daemon=True
        ).start()

    def _run(self, worker: _Worker) -> None:
        lock, idle = self._lock, self._idle
        while True:
            job, worker.job = worker.job, None
            if job is not None:
                try:
                    job()
                except BaseException:  # noqa: BLE001 - jobs report their own errors
                    LOG.exception("cellrouter worker job failed")
                job = None  # drop references before sleeping
            with lock:
                idle.append(worker)
            if worker.wake.acquire(timeout=self.idle_seconds):
                continue
            with lock:
                try:
                    idle.remove(worker)
                except ValueError:
                    pass  # just reserved by submit(): its job is on the way
                else:
                    self.threads -= 1
                    return
            worker.wake.acquire()

    def stats(self) -> tuple[int, int]:
        """(threads alive, threads idle)."""
        return self.threads, len(self._idle)


_pool = _Pool()


def submit(job: Callable[[], None]) -> None:
    """Run ``job()`` on a pool thread (it must not raise; nobody waits for it)."""
    _pool.submit(job)


def stats() -> tuple[int, int]:
    """(threads alive, threads idle) of the process's pool."""
    return _pool.stats()


def renew_after_fork() -> None:
    """In a forked child: a fresh pool (the parent's threads do not exist here).

    Called by the runtime's fork hook (:mod:`cellrouter.runtime`).
    """
    global _pool
    _pool = _Pool()
