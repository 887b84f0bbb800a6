"""The lookup cache: a dogpile.cache region holding the answers of the mapping
index's hot lookups (instance -> cell, host -> cell), configured by ``[cache]``.

The backend is chosen by a string: ``memory`` (this process), ``memcached``
(pymemcache) and ``redis`` share one cache between processes; ``null`` turns
caching off. A backend that fails or is slow never fails a lookup: every
operation is bounded by ``[cache]/timeout``, the first failure logs one
warning, and lookups then go straight to the API database for
``[cache]/retry_interval`` seconds before the backend is tried again.
Invalidations that could not reach the backend meanwhile are kept (up to
:data:`MAX_PENDING` keys) and sent once it answers again.

Values are plain tuples of what the API database holds; the caller turns
them into records. Hits take no lock.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from dogpile.cache import make_region, register_backend
from dogpile.cache.api import NO_VALUE
from dogpile.cache.backends.memcached import PyMemcacheBackend
from dogpile.cache.region import CacheRegion
from oslo_config import cfg

from cellrouter import exception, forksafe
from cellrouter.db.bulk import chunks
from cellrouter.index import cache_stats
from cellrouter.url import mask_url

__all__ = ["BACKENDS", "MAX_PENDING", "LookupCache", "backend_name", "from_conf"]

LOG = logging.getLogger(__name__)

#: the short backend names ``[cache]/backend`` accepts, and their dogpile.cache names
BACKENDS: Final = {
    "memory": "dogpile.cache.memory",
    "memcached": "cellrouter.pymemcache",
    "redis": "dogpile.cache.redis",
    "null": "dogpile.cache.null",
}
#: backends whose data lives in this process (no timeouts, no key mangling)
_LOCAL: Final = frozenset(
    {"dogpile.cache.memory", "dogpile.cache.memory_pickle", "dogpile.cache.null"}
)
#: invalidations kept while the backend is down, sent when it answers again
MAX_PENDING: Final = 100_000
#: longest key sent as is to a remote backend (memcached allows 250 bytes)
_MAX_KEY: Final = 200


class _BoundedPyMemcache(PyMemcacheBackend):
    """dogpile's pymemcache backend with connect and socket timeouts: without
    them a blackholed memcached blocks every lookup forever."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        self._timeout = float(arguments.get("timeout", 0.5))
        self._dead = float(arguments.get("dead_timeout", 5.0))
        super().__init__(arguments)

    def _create_client(self) -> Any:
        from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]

        return HashClient(
            self.url,
            serde=self.serde,
            connect_timeout=self._timeout,
            timeout=self._timeout,
            retry_attempts=1,
            retry_timeout=0,
            dead_timeout=self._dead,
            default_noreply=False,
        )


register_backend("cellrouter.pymemcache", __name__, "_BoundedPyMemcache")


def backend_name(conf: cfg.ConfigOpts) -> str:
    """The dogpile.cache backend ``[cache]/backend`` names (ConfigurationError if unknown)."""
    name = conf.cache.backend
    backend = BACKENDS.get(name, name)
    if "." not in backend:
        raise exception.ConfigurationError(
            reason=f"[cache]/backend: unknown backend {name!r} (memory, memcached, redis, "
            "null, or a dogpile.cache backend name such as dogpile.cache.redis)"
        )
    return backend


def _arguments(conf: cfg.ConfigOpts, backend: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for number, item in enumerate(conf.cache.backend_argument, 1):
        name, sep, value = item.partition(":")
        if not sep or not name.strip():  # the value may be a secret: not printed
            raise exception.ConfigurationError(
                reason=f"[cache]/backend_argument: value {number} is not 'name:value'"
            )
        args[name.strip()] = value
    timeout = conf.cache.timeout
    keep = conf.cache.expiration_time + 60  # the server forgets a little after we stop trusting
    if backend == "cellrouter.pymemcache":
        args.setdefault("url", "127.0.0.1:11211")
        args["url"] = [server.strip() for server in str(args["url"]).split(",")]
        args.update(timeout=timeout, dead_timeout=conf.cache.retry_interval)
        args.setdefault("memcached_expire_time", keep)
    elif backend == "dogpile.cache.redis":
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        args.update(socket_timeout=timeout, socket_connect_timeout=timeout)
        # redis-py retries a failed command three times with backoff by default:
        # that would multiply the bound. The cache retries after retry_interval.
        args["connection_kwargs"] = {"retry": Retry(NoBackoff(), 0)}
        args.setdefault("redis_expiration_time", keep)
        for name in ("port", "db"):
            if name in args:
                args[name] = int(args[name])
    return args


def _safe_key(prefix: str) -> Any:
    """A key mangler for remote backends: the prefix, and a digest for keys a
    memcached server would refuse (too long, spaces or control characters)."""

    def mangle(key: str) -> str:
        if len(key) <= _MAX_KEY and key.isascii() and key.isprintable() and " " not in key:
            return prefix + key
        return prefix + "sha1:" + hashlib.sha1(key.encode()).hexdigest()

    return mangle


class LookupCache:
    """Get, set and invalidate lookup answers; a failing backend means a miss."""

    def __init__(
        self,
        region: CacheRegion | None,
        name: str,
        retry_interval: float,
        local: dict[str, Any] | None = None,
    ) -> None:
        #: None: the region could not be built (the first use logs why) or caching is off
        self.region = region
        self.name = name
        self.retry_interval = retry_interval
        #: the memory backend's own dict (``cache_dict``): hits read it directly
        self._local = local
        self._expiration = float(region.expiration_time or 0) if region is not None else 0.0
        self._down_until = 0.0
        self._warned = False
        self._pending: set[str] = set()
        self._overflowed = False
        self._lock = forksafe.Lock()

    # -- reads ------------------------------------------------------------------

    def _usable(self) -> CacheRegion | None:
        region = self.region
        if region is None or (self._down_until and time.monotonic() < self._down_until):
            return None
        return region

    def get(self, key: str) -> Any | None:
        """The cached value of ``key``, or None (not cached, expired, or backend down)."""
        local = self._local
        if local is not None:
            # In this process: the dict read directly (a memory backend cannot fail),
            # the same expiry test as the region's.
            entry = local.get(key)
            if entry is not None and time.time() - entry.metadata["ct"] < self._expiration:
                cache_stats.count("hits")
                return entry.payload
            cache_stats.count("misses")
            return None
        region = self._usable()
        if region is None:
            cache_stats.count("misses")
            return None
        try:
            if self._warned:  # back after a failure: first drop what changed meanwhile
                self._recover(region)
            value = region.get(key)
        except Exception as error:  # any backend failure is a miss, never an error
            self._failed(error)
            cache_stats.count("misses")
            return None
        if value is NO_VALUE:
            cache_stats.count("misses")
            return None
        cache_stats.count("hits")
        return value

    def get_multi(self, keys: Sequence[str]) -> list[Any | None]:
        """The cached values of ``keys`` in order (None where not cached)."""
        region = self._usable()
        values: list[Any] = []
        if region is not None and keys:
            try:
                if self._warned:
                    self._recover(region)
                values = region.get_multi(keys)
            except Exception as error:
                self._failed(error)
                values = []
        if not values:
            values = [NO_VALUE] * len(keys)
        found = [None if value is NO_VALUE else value for value in values]
        hits = sum(value is not None for value in found)
        cache_stats.count("hits", hits)
        cache_stats.count("misses", len(found) - hits)
        return found

    # -- writes -----------------------------------------------------------------

    def set(self, key: str, value: Any) -> None:
        """Cache ``value`` for ``key`` (silently skipped while the backend is down)."""
        self.set_multi({key: value})

    def set_multi(self, values: Mapping[str, Any]) -> None:
        region = self._usable()
        if region is None or not values:
            return
        try:
            if len(values) == 1:
                [(key, value)] = values.items()
                region.set(key, value)
            else:
                region.set_multi(dict(values))
        except Exception as error:
            self._failed(error)

    def invalidate(self, keys: Iterable[str]) -> None:
        """Drop ``keys``: their answers changed. Kept for later if the backend is down."""
        todo = list(dict.fromkeys(keys))
        if not todo or self.region is None:
            return
        cache_stats.count("invalidations", len(todo))
        region = self._usable()
        if region is None:
            self._keep(todo)
            return
        try:
            for chunk in chunks(todo):
                region.delete_multi(chunk)
        except Exception as error:
            self._failed(error)
            self._keep(todo)

    def check(self) -> str | None:
        """Write and read back a probe key: None when the backend answers, else why not."""
        region = self.region
        if region is None:
            return "not in use"
        try:
            region.set("probe", 1)
            if region.get("probe") != 1:
                return "a value written could not be read back"
        except Exception as error:
            return mask_url(f"{type(error).__name__}: {error}")
        return None

    def clear_local(self) -> None:
        """Forget everything cached in this process (a no-op for shared backends)."""
        if self._local is not None:
            self._local.clear()

    # -- failure and recovery ---------------------------------------------------

    def _keep(self, keys: list[str]) -> None:
        with self._lock:
            room = MAX_PENDING - len(self._pending)
            self._pending.update(keys[: max(room, 0)])
            if len(keys) > room and not self._overflowed:
                self._overflowed = True
                LOG.warning(
                    "mapping cache (%s): more than %d invalidations could not be sent while "
                    "it was down; entries may be stale until they expire",
                    self.name,
                    MAX_PENDING,
                )

    def _failed(self, error: BaseException) -> None:
        cache_stats.count("errors")
        self._down_until = time.monotonic() + self.retry_interval
        if not self._warned:
            self._warned = True
            LOG.warning(
                "mapping cache (%s) unavailable, looking mappings up in the API database "
                "directly (retrying the cache every %ss): %s",
                self.name,
                self.retry_interval,
                mask_url(f"{type(error).__name__}: {error}"),
            )

    def _recover(self, region: CacheRegion) -> None:
        """Send the invalidations kept while the backend was down (raises if it still is)."""
        with self._lock:
            pending, self._pending = list(self._pending), set()
        try:
            for chunk in chunks(pending):
                region.delete_multi(chunk)
        except Exception:
            self._keep(pending)
            raise
        self._warned = self._overflowed = False
        LOG.info("mapping cache (%s) answers again", self.name)


def from_conf(conf: cfg.ConfigOpts) -> LookupCache:
    """The lookup cache ``[cache]`` describes (a cache that never hits if it cannot be built)."""
    group = conf.cache
    backend = backend_name(conf)
    name = group.backend
    if backend == "dogpile.cache.null":
        return LookupCache(None, name, group.retry_interval)
    arguments = _arguments(conf, backend)
    local: dict[str, Any] | None = None
    if backend == BACKENDS["memory"]:
        local = arguments.setdefault("cache_dict", {})
    try:
        region = make_region(
            key_mangler=None if backend in _LOCAL else _safe_key(group.key_prefix)
        ).configure(backend, expiration_time=group.expiration_time, arguments=arguments)
    except exception.ConfigurationError:
        raise
    except Exception as error:  # a missing client library, a bad argument
        LOG.warning(
            "mapping cache (%s) could not be set up, looking mappings up in the API "
            "database directly: %s",
            name,
            mask_url(f"{type(error).__name__}: {error}"),
        )
        return LookupCache(None, name, group.retry_interval)
    return LookupCache(region, name, group.retry_interval, local)
