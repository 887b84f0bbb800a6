"""Module locks must not stay held in a child forked while another thread held them."""

from __future__ import annotations

import os
import threading

import pytest

from cellrouter import forksafe, messaging
from cellrouter.cells import registry
from cellrouter.db import database, engine
from cellrouter.index import events
from cellrouter.index.cached_index import CACHED_INDEX

pytestmark = pytest.mark.filterwarnings(r"ignore:Using fork\(\) is a bad idea:DeprecationWarning")


def _child_can_take(lock: forksafe.Lock) -> bool:
    """Fork while another thread holds ``lock``; report whether the child can take it."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        ok = lock.acquire(timeout=2)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    release.set()
    holder.join()
    assert lock.locked() is False  # the parent's lock was released normally
    return answer == b"1"


def test_a_fresh_lock_in_the_child() -> None:
    assert _child_can_take(forksafe.Lock())


@pytest.mark.parametrize(
    "lock",
    [
        engine._engines_lock,
        messaging._create_lock,
        CACHED_INDEX.cells_list._lock,
        events._lock,
        registry._lock,
        database._api._lock,
    ],
    ids=["engine", "messaging", "cell_list", "events", "registry", "database"],
)
def test_module_locks_are_fork_safe(lock: forksafe.Lock) -> None:
    assert isinstance(lock, forksafe.Lock)
    assert _child_can_take(lock)


def test_plain_threading_lock_would_deadlock_the_child() -> None:
    """The hazard the module exists for (so the test above can fail)."""

    class Plain(forksafe.Lock):
        __slots__ = ()

    plain = Plain()
    forksafe._all.discard(plain)  # not renewed: behaves like threading.Lock
    assert not _child_can_take(plain)
