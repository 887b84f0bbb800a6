"""Mapping write notifications: what a process hears after each committed mapping write.

The mapping store (:mod:`cellrouter.index.store`), the one writer of the
index, calls :func:`mapping_changed` after each write transaction commits
(never for one rolled back), once per kind with every key it changed.
Listeners (the connection registry, cell health, the cached cell list)
subscribe here instead of being called from each write site. Work that must
happen inside the write's transaction is a store write hook instead
(:meth:`~cellrouter.index.store.MappingStore.add_write_hook`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal

from cellrouter import forksafe

__all__ = ["Kind", "Listener", "mapping_changed", "subscribe", "unsubscribe"]

LOG = logging.getLogger(__name__)

Kind = Literal["cell", "instance", "host"]
#: ``listener(kind, keys)``: keys are cell uuids, instance uuids or host names.
Listener = Callable[[Kind, tuple[str, ...]], None]

_listeners: tuple[Listener, ...] = ()
_lock = forksafe.Lock()


def subscribe(listener: Listener) -> None:
    """Call ``listener`` after every mapping write in this process."""
    global _listeners
    with _lock:
        if listener not in _listeners:
            _listeners = (*_listeners, listener)


def unsubscribe(listener: Listener) -> None:
    global _listeners
    with _lock:
        _listeners = tuple(fn for fn in _listeners if fn != listener)


def mapping_changed(kind: Kind, keys: Iterable[str]) -> None:
    """Tell every listener that the ``kind`` mappings for ``keys`` changed."""
    listeners = _listeners
    if not listeners:
        return
    frozen = tuple(keys)
    for listener in listeners:
        try:
            listener(kind, frozen)
        except Exception:  # a broken listener must not undo a committed write
            LOG.exception("mapping change listener %r failed", listener)
