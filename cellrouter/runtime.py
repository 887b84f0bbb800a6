"""The process's cellrouter runtime: every piece of state the library keeps,
and the one place where it is reset and renewed after ``fork()``.

A process holds one configuration, one mapping index (the store that writes
it, and the cached index lookups read through: the lookup cache and the live
cell list), one connection registry (pooled engines and transports per cell),
one record of cell health, one worker pool and one clock. Each lives in
the module of its concept, where the hot paths read it without a lookup;
:class:`Runtime` is what knows them all:

* :meth:`Runtime.reset`, run after every :func:`setup` (and by tests), drops
  what was built from the old configuration, in dependency order: the cell
  list and the cache client, cell health (its probes stop), the registry
  (every pool disposed) and the API/local engines;
* :meth:`Runtime.after_fork` is the package's only ``os.register_at_fork``
  hook: a child gets unheld locks, forgets the parent's sockets without
  closing them, and starts with no threads, no health and no cache client of
  its own.

:func:`reload` and :func:`reload_on_sighup` are for services that want a
cell change seen at once rather than within ``[cells]/refresh_interval``.

The runtime also wires the layers that must not import each other: cell
health sits above the registry (its probes use the cells' engines), so it is
handed to the registry here, and mapping change notices reach the cached
index, the registry and health through the subscriptions made here.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from types import FrameType, ModuleType
from typing import Any

from oslo_config import cfg

from cellrouter import clock, forksafe, workers
from cellrouter import conf as config
from cellrouter.across import health, sqlite_reads
from cellrouter.cells import registry
from cellrouter.db import database, engine
from cellrouter.index import cache_stats as _stats
from cellrouter.index import events
from cellrouter.index.cache_stats import CacheStats
from cellrouter.index.cached_index import CACHED_INDEX, CachedIndex
from cellrouter.index.lookup_cache import backend_name
from cellrouter.index.store import STORE, MappingStore

__all__ = ["Runtime", "cache_stats", "current", "reload", "reload_on_sighup", "setup"]


class Runtime:
    """The state of cellrouter in this process (see the module docstring)."""

    #: the mapping store: every write of the API database's mappings, and direct reads
    index: MappingStore = STORE
    #: what lookups read through: the lookup cache and the live cell list
    cached: CachedIndex = CACHED_INDEX
    #: per-cell pooled engines and transports (module-level state, lock-free reads)
    registry: ModuleType = registry
    #: which cells (and queues) failed recently, and their probes
    health: ModuleType = health

    def __init__(self) -> None:
        registry.set_health(health)
        CACHED_INDEX.cells_list.add_reload_hook(registry.retain_current)
        for listener in (
            CACHED_INDEX.on_mapping_changed,
            registry.on_mapping_changed,
            health.on_mapping_changed,
        ):
            events.subscribe(listener)

    @property
    def conf(self) -> cfg.ConfigOpts:
        """The ``ConfigOpts`` the library reads (``cellrouter.CONF`` or a service's own)."""
        return config.get_conf()

    @property
    def clock(self) -> clock.Clock:
        """Where health and scatter read the time (replace with :func:`clock.use`)."""
        return clock.current()

    @property
    def workers(self) -> tuple[int, int]:
        """(threads alive, threads idle) of the worker pool."""
        return workers.stats()

    def reset(self) -> None:
        """Drop everything built from the configuration, in dependency order."""
        CACHED_INDEX.reset()
        health.reset()
        registry.reset()  # disposes every cell's pools and the API/local engines
        database.reset()

    def after_fork(self) -> None:
        """In a forked child: renew locks, detach pools, start without threads or health."""
        forksafe.renew_after_fork()
        engine.detach_after_fork()
        CACHED_INDEX.reset()  # a cache client's sockets are the parent's
        registry.forget_after_fork()
        health.reset_after_fork()
        workers.renew_after_fork()
        sqlite_reads.renew_after_fork()


_current = Runtime()


def current() -> Runtime:
    """This process's runtime."""
    return _current


def setup(
    argv: Sequence[str] | None = None,
    conf: cfg.ConfigOpts | None = None,
    default_config_files: Sequence[str] | None = None,
) -> cfg.ConfigOpts:
    """Load the configuration and reset the runtime (see :func:`cellrouter.conf.setup`)."""
    return config.setup(argv, conf, default_config_files)


def reload() -> None:
    """Read the cell list again now (replacing the connections of changed cells)
    and drop this process's cached lookups: a cell change is seen at once."""
    CACHED_INDEX.reload()


def reload_on_sighup() -> None:
    """Make SIGHUP reload the cell list (on the next use; the handler does no I/O).

    Call it from the main thread; a handler installed before is still called.
    """
    previous = signal.getsignal(signal.SIGHUP)

    def handler(signum: int, frame: FrameType | None) -> Any:
        CACHED_INDEX.cells_list.request_reload()
        if callable(previous):
            return previous(signum, frame)
        return None

    signal.signal(signal.SIGHUP, handler)


def cache_stats() -> CacheStats:
    """This process's mapping cache and cell list counters since it started."""
    return _stats.stats()


def _check_cache_backend() -> None:
    """A ``[cache]/backend`` that names no backend fails setup(), not the first lookup."""
    backend_name(config.get_conf())


config.on_setup(_current.reset)
config.on_setup(_check_cache_backend)
os.register_at_fork(after_in_child=_current.after_fork)
