"""The two databases a process may be configured with, and the no-up-call rule.

API-level services set ``[api_database]/connection`` and reach the mapping
index through :func:`api_engine`. Cell-level services set only
``[database]/connection``: for them :func:`api_engine` raises
:class:`~cellrouter.exception.UpcallForbidden`, so a cell can never read or
write the API database, whatever the calling code does.

A connection failure on either raises :class:`~cellrouter.exception.ApiDatabaseUnavailable`
or :class:`~cellrouter.exception.DatabaseUnavailable`, naming the option.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from cellrouter import exception, forksafe
from cellrouter.conf import get_conf
from cellrouter.db import dberror
from cellrouter.db.engine import create_engine
from cellrouter.url import mask_url

__all__ = ["api_engine", "local_engine", "reset", "unavailable_hook"]


class _EngineSlot:
    """One configured database: its engine, rebuilt when its URL changes.

    The (url, engine) pair is replaced whole, so readers never take the lock.
    A connection failure raises the group's Unavailable error, naming the option.
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self._current: tuple[str, Engine] | None = None
        self._lock = forksafe.Lock()

    def get(self, url: str | None) -> Engine:
        current = self._current
        if current is not None and current[0] == url:
            return current[1]
        if not url:
            raise exception.MissingConnection(group=self.group, option="connection")
        with self._lock:
            current = self._current
            if current is None or current[0] != url:
                if current is not None:
                    current[1].dispose()
                current = (url, create_engine(url, unavailable=unavailable_hook(self.group, url)))
                self._current = current
        return current[1]

    def reset(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current[1].dispose()
            self._current = None


_ERRORS: dict[str, type[exception.Unavailable]] = {
    "api_database": exception.ApiDatabaseUnavailable,
    "database": exception.DatabaseUnavailable,
}


def unavailable_hook(group: str, url: str) -> Callable[[BaseException, bool], BaseException]:
    """The engine hook that names ``[group]/connection`` (masked) when it is unreachable."""
    error, masked = _ERRORS[group], mask_url(url)

    def unavailable(cause: BaseException, _marks_down: bool) -> BaseException:
        return error(url=masked, reason=dberror.describe(cause))

    return unavailable


_api = _EngineSlot("api_database")
_local = _EngineSlot("database")


def api_engine() -> Engine:
    """The pooled engine of the API database."""
    conf = get_conf()
    url = conf.api_database.connection
    if not url and conf.database.connection:
        raise exception.UpcallForbidden(what="the API database was requested")
    return _api.get(url)


def local_engine() -> Engine:
    """The pooled engine of this service's own cell (``[database]/connection``)."""
    return _local.get(get_conf().database.connection)


def reset() -> None:
    """Dispose both engines (configuration reloaded, tests)."""
    _api.reset()
    _local.reset()
