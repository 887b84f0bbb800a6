"""The process's cellrouter runtime: every piece of state the library keeps,
and the one place where it is reset and renewed after ``fork()``.

A process holds one configuration, one mapping index, one connection
registry (pooled engines and transports per cell), one record of cell
health, one worker pool, one cached cell list and one clock. Each lives in
the module of its concept, where the hot paths read it without a lookup;
:class:`Runtime` is what knows them all:

* :meth:`Runtime.reset`, run after every :func:`setup` (and by tests), drops
  what was built from the old configuration, in dependency order: the cell
  list, cell health (its probes stop), the registry (every pool disposed) and
  the API/local engines;
* :meth:`Runtime.after_fork` is the package's only ``os.register_at_fork``
  hook: a child gets unheld locks, forgets the parent's sockets without
  closing them, and starts with no threads and no health of its own.

The runtime also wires the layers that must not import each other: cell
health sits above the registry (its probes use the cells' engines), so it is
handed to the registry here, and mapping change notices reach the registry,
health and the cell list through the subscriptions made here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType

from oslo_config import cfg

from cellrouter import clock, forksafe, workers
from cellrouter import conf as config
from cellrouter.across import health
from cellrouter.cells import cell_list, registry
from cellrouter.db import database, engine
from cellrouter.index import events
from cellrouter.index.store import STORE, MappingStore

__all__ = ["Runtime", "current", "setup"]


class Runtime:
    """The state of cellrouter in this process (see the module docstring)."""

    #: the mapping index: every read and write of the API database's mappings
    index: MappingStore = STORE
    #: per-cell pooled engines and transports (module-level state, lock-free reads)
    registry: ModuleType = registry
    #: which cells (and queues) failed recently, and their probes
    health: ModuleType = health
    #: the cached list of every cell
    cell_list: ModuleType = cell_list

    def __init__(self) -> None:
        registry.set_health(health)
        for listener in (
            cell_list.on_mapping_changed,
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
        cell_list.invalidate()
        health.reset()
        registry.reset()  # disposes every cell's pools and the API/local engines
        database.reset()

    def after_fork(self) -> None:
        """In a forked child: renew locks, detach pools, start without threads or health."""
        forksafe.renew_after_fork()
        engine.detach_after_fork()
        registry.forget_after_fork()
        health.reset_after_fork()
        workers.renew_after_fork()


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


config.on_setup(_current.reset)
os.register_at_fork(after_in_child=_current.after_fork)
