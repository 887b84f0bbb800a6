"""The lookup cache's configuration and its failure handling, with no server:
a backend that raises stands for one that is down; the memory and null
backends show hits and their absence. (The real Redis and memcached are in
``tests/behaviour/test_mapping_cache.py``.)"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dogpile.cache import register_backend
from dogpile.cache.api import CacheBackend
from oslo_config import cfg

import cellrouter
from cellrouter import exception
from cellrouter.index import cache_stats
from cellrouter.index.cached_index import CACHED_INDEX
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.index.lookup_cache import from_conf

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]


class _Failing(CacheBackend):  # type: ignore[misc]
    """A backend whose every operation fails, as a dead server's does; ``broken``
    can be cleared to bring it back (it then answers from a dict)."""

    broken = True
    calls = 0

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.data: dict[str, Any] = {}

    def _op(self) -> None:
        type(self).calls += 1
        if type(self).broken:
            raise ConnectionRefusedError("[Errno 111] password=hunter2 refused")

    def get(self, key: str) -> Any:
        self._op()
        from dogpile.cache.api import NO_VALUE

        return self.data.get(key, NO_VALUE)

    def get_multi(self, keys: Any) -> Any:
        return [self.get(key) for key in keys]

    def set(self, key: str, value: Any) -> None:
        self._op()
        self.data[key] = value

    def set_multi(self, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            self.set(key, value)

    def delete(self, key: str) -> None:
        self._op()
        self.data.pop(key, None)

    def delete_multi(self, keys: Any) -> None:
        for key in keys:
            self.delete(key)


register_backend("tests.failing", __name__, "_Failing")


def use_backend(conf: cfg.ConfigOpts, name: str, retry_interval: float = 60.0) -> None:
    conf.set_override("backend", name, group="cache")
    conf.set_override("retry_interval", retry_interval, group="cache")
    CACHED_INDEX.reset()


def test_an_unknown_backend_is_a_configuration_error(tmp_path: Path, conf: cfg.ConfigOpts) -> None:
    config = tmp_path / "c.conf"
    config.write_text("[cache]\nbackend = bogus\n")
    with pytest.raises(exception.ConfigurationError, match=r"\[cache\]/backend: unknown backend"):
        cellrouter.setup(["--config-file", str(config)])


def test_a_bad_backend_argument_names_the_option_not_the_value(conf: cfg.ConfigOpts) -> None:
    conf.set_override("backend", "redis", group="cache")
    conf.set_override("backend_argument", ["url:redis://x", "hunter2"], group="cache")
    with pytest.raises(exception.ConfigurationError) as err:
        from_conf(conf)
    assert "value 2 is not 'name:value'" in str(err.value) and "hunter2" not in str(err.value)


def test_memory_hits_and_null_never_does(
    conf: cfg.ConfigOpts, make_cells: MakeCells, make_instance: MakeInstance
) -> None:
    (cell,) = make_cells(1)
    uuid = make_instance(cell)
    for name, hits in (("memory", 2), ("null", 0)):
        use_backend(conf, name)
        before = cellrouter.cache_stats()
        for _ in range(3):
            assert InstanceMapping.get_by_instance_uuid(None, uuid).cell_mapping == cell
        after = cellrouter.cache_stats()
        assert (after.hits - before.hits, after.misses - before.misses) == (hits, 3 - hits), name


def test_a_failing_backend_means_direct_lookups_and_one_warning(
    conf: cfg.ConfigOpts,
    make_cells: MakeCells,
    make_instance: MakeInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (cell,) = make_cells(1)
    uuids = [make_instance(cell) for _ in range(3)]
    _Failing.broken, _Failing.calls = True, 0
    use_backend(conf, "tests.failing", retry_interval=60.0)
    caplog.set_level(logging.WARNING, logger="cellrouter.index.lookup_cache")
    before = cache_stats.stats()
    for _ in range(3):
        for uuid in uuids:
            assert InstanceMapping.get_by_instance_uuid(None, uuid).cell_mapping == cell
    assert _Failing.calls == 1  # then left alone for retry_interval
    (warning,) = [r for r in caplog.records if r.name == "cellrouter.index.lookup_cache"]
    assert "unavailable" in warning.getMessage() and "hunter2" not in warning.getMessage()
    now = cache_stats.stats()
    assert (now.errors - before.errors, now.hits - before.hits) == (1, 0)


def test_invalidations_are_kept_while_down_and_sent_on_recovery(
    conf: cfg.ConfigOpts, make_cells: MakeCells, make_instance: MakeInstance
) -> None:
    cell, other = make_cells(2)
    uuid = make_instance(cell)
    _Failing.broken = False
    use_backend(conf, "tests.failing", retry_interval=0.0)
    InstanceMapping.get_by_instance_uuid(None, uuid)  # cached
    _Failing.broken = True
    InstanceMapping.get_by_instance_uuid(None, uuid).set_cell(None, other)  # cannot invalidate
    _Failing.broken = False
    assert InstanceMapping.get_by_instance_uuid(None, uuid).cell_mapping == other


def test_a_backend_that_cannot_be_built_warns_and_lookups_go_direct(
    conf: cfg.ConfigOpts,
    make_cells: MakeCells,
    make_instance: MakeInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (cell,) = make_cells(1)
    uuid = make_instance(cell)
    use_backend(conf, "dogpile.cache.no_such_backend")
    caplog.set_level(logging.WARNING, logger="cellrouter.index.lookup_cache")
    for _ in range(2):
        assert InstanceMapping.get_by_instance_uuid(None, uuid).cell_mapping == cell
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "could not be set up" in messages[0]


def test_counters_are_public_and_start_from_zero() -> None:
    cache_stats.reset()
    assert cellrouter.cache_stats() == cellrouter.CacheStats(0, 0, 0, 0, 0)
    cache_stats.count("hits", 3)
    assert cellrouter.cache_stats().hits == 3
