"""Fixtures of the reference deployment tests.

``embedded``: one :class:`~cellrouter.reference.deployment.EmbeddedDeployment`
per test module (SQLite files, ``fake://``, everything in this process; no
server; ``noauth``: a request without headers is an admin), with ``client``
speaking HTTP to it. The functional tests here
(marked ``functional``) use the helpers of ``tests/functional/servers.py`` for
their own MariaDB databases and RabbitMQ vhosts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reference_helpers import reset_cellrouter

from cellrouter.reference.demo import Client
from cellrouter.reference.deployment import EmbeddedDeployment, Topology

_FUNCTIONAL = Path(__file__).resolve().parents[1] / "functional"
if str(_FUNCTIONAL) not in sys.path:
    sys.path.insert(0, str(_FUNCTIONAL))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedDeployment]:
    workdir = tmp_path_factory.mktemp("reference")
    deployment = EmbeddedDeployment(Topology.sqlite(workdir), workdir, auth_strategy="noauth")
    try:
        yield deployment.start()
    finally:
        deployment.stop()
        reset_cellrouter()


@pytest.fixture
def client(embedded: EmbeddedDeployment) -> Client:
    return Client(embedded.url)
