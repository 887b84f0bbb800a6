"""cellrouter.setup(): the library's own ConfigOpts, or an embedding service's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

import cellrouter
from cellrouter import conf, exception
from cellrouter.cells.context import get_admin_context
from cellrouter.db import migration
from cellrouter.index.cell_mapping import CellMapping


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    conf.setup([], default_config_files=[])
    conf.CONF.clear_override("connection", group="api_database")


def test_setup_loads_config_files_and_can_be_called_again(tmp_path: Path, restore: None) -> None:
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("[cells]\nscatter_timeout = 7\n")
    second.write_text("[cells]\nscatter_timeout = 9\n[scheduler]\n")
    loaded = cellrouter.setup(["--config-file", str(first)])
    assert loaded is cellrouter.CONF and conf.get_conf().cells.scatter_timeout == 7
    cellrouter.setup(["--config-file", str(second)])
    assert conf.get_conf().cells.scatter_timeout == 9
    cellrouter.setup([], default_config_files=[])
    assert conf.get_conf().cells.scatter_timeout == 60


def test_setup_adopts_an_embedding_services_config(tmp_path: Path, restore: None) -> None:
    service_conf = cfg.ConfigOpts()
    service_conf.register_opt(cfg.StrOpt("flavour", default="mint"))  # the service's own
    service_conf([], project="myservice", default_config_files=[])
    assert cellrouter.setup(conf=service_conf) is service_conf
    assert conf.get_conf() is service_conf
    # the library now reads the service's object for everything
    api_url = f"sqlite:///{tmp_path / 'api.db'}"
    migration.sync("api", api_url)
    service_conf.set_override("connection", api_url, group="api_database")
    cell = CellMapping.create(
        get_admin_context(), name="c", database_connection="sqlite://", transport_url="fake://"
    )
    assert [c.uuid for c in CellMapping.get_all(get_admin_context())] == [cell.uuid]
    assert service_conf.flavour == "mint"
    # the library's own CONF was not the one configured
    assert cellrouter.CONF.api_database.connection is None
    # and with argv the service's object is parsed too
    path = tmp_path / "svc.conf"
    path.write_text("[DEFAULT]\nflavour = lime\n[cells]\ndb_pool_size = 2\n")
    cellrouter.setup(["--config-file", str(path)], conf=service_conf)
    assert (service_conf.flavour, service_conf.cells.db_pool_size) == ("lime", 2)


def test_missing_config_file_is_an_error(tmp_path: Path, restore: None) -> None:
    with pytest.raises(cfg.ConfigFilesNotFoundError):
        cellrouter.setup(["--config-file", str(tmp_path / "nope.conf")])


def test_options_listed_for_the_generator() -> None:
    groups = dict(conf.list_opts())
    assert {"DEFAULT", "api_database", "database", "cells", "scheduler"} <= set(groups)
    secret = {(group, opt.name) for group, opts in groups.items() for opt in opts if opt.secret}
    assert secret == {
        ("DEFAULT", "transport_url"),
        ("api_database", "connection"),
        ("database", "connection"),
        ("cache", "backend_argument"),
    }
    assert exception.MissingConnection(group="database", option="connection")
