"""The worker threads every background job of cellrouter runs on.

Scatter-gather (one job per cell), health probes and bounded RPC sends all
submit here. The pool is elastic up to a cap (``[cells]/max_worker_threads``):
an idle thread is reused, a new one starts when none is idle, and once the
cap is reached further jobs wait in line (first come, first served) for the
next thread that finishes, so the thread count does not grow with the number
of cells. Threads idle for :data:`IDLE_SECONDS` retire. Jobs must not raise:
they report their own outcome, and a job whose caller stopped waiting for it
should return at once when it finally runs. A forked child starts with an
empty pool.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Final

from cellrouter.conf import get_conf

__all__ = ["IDLE_SECONDS", "Job", "renew_after_fork", "stats", "submit", "submit_all"]

LOG = logging.getLogger(__name__)

#: Seconds an idle worker thread waits for a job before it retires.
IDLE_SECONDS: Final = 60.0

Job = Callable[[], None]


class _Worker:
    """One pool thread's mailbox: a job slot and the lock it sleeps on."""

    __slots__ = ("job", "wake")

    def __init__(self, job: Job) -> None:
        self.job: Job | None = job
        self.wake = threading.Lock()
        self.wake.acquire()


class _Pool:
    """Daemon threads up to a cap: reuse an idle one, else start one, else queue."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the most recently idle runs next
        self._queue: collections.deque[Job] = collections.deque()
        self.threads = 0

    def submit(self, jobs: Iterable[Job], max_threads: int) -> None:
        start: list[_Worker] = []
        wake: list[_Worker] = []
        with self._lock:
            idle, queue = self._idle, self._queue
            for job in jobs:
                if idle:
                    worker = idle.pop()
                    worker.job = job
                    wake.append(worker)
                elif self.threads < max_threads and not queue:
                    self.threads += 1
                    start.append(_Worker(job))
                else:
                    queue.append(job)
        for worker in wake:
            worker.wake.release()
        for worker in start:
            threading.Thread(
                target=self._run, args=(worker,), name="cellrouter-worker", daemon=True
            ).start()

    def _run(self, worker: _Worker) -> None:
        lock, idle, queue = self._lock, self._idle, self._queue
        while True:
            job, worker.job = worker.job, None
            while job is not None:
                try:
                    job()
                except BaseException:  # noqa: BLE001 - jobs report their own errors
                    LOG.exception("cellrouter worker job failed")
                job = None  # drop references before sleeping
                with lock:
                    if queue:
                        job = queue.popleft()
                    else:
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

    def queued(self) -> int:
        """Jobs waiting for a thread."""
        return len(self._queue)


_pool = _Pool()


def submit(job: Job) -> None:
    """Run ``job()`` on a pool thread (it must not raise; nobody waits for it)."""
    _pool.submit((job,), get_conf().cells.max_worker_threads)


def submit_all(jobs: Iterable[Job]) -> None:
    """:func:`submit` each of ``jobs``, in order (one look at the configuration)."""
    _pool.submit(jobs, get_conf().cells.max_worker_threads)


def stats() -> tuple[int, int]:
    """(threads alive, threads idle) of the process's pool."""
    return _pool.stats()


def queued() -> int:
    """Jobs of the process's pool waiting for a thread (the cap is reached)."""
    return _pool.queued()


def renew_after_fork() -> None:
    """In a forked child: a fresh pool (the parent's threads do not exist here).

    Called by the runtime's fork hook (:mod:`cellrouter.runtime`).
    """
    global _pool
    _pool = _Pool()
