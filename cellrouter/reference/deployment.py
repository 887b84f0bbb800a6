"""Running the reference deployment: its topology, configuration files, schemas and processes.

Two ways to run the same services:

* :class:`EmbeddedDeployment`: SQLite files and ``fake://`` messaging, which
  only works inside one process, so the API (a threaded WSGI server,
  waitress), the super conductor and the compute agents share this process;
* :class:`ProcessDeployment`: any database server and broker (MariaDB and
  RabbitMQ); the API (gunicorn, several worker processes), the conductor and
  each cell's compute agents run as separate processes, each with its own
  configuration file (a compute agent's has no ``[api_database]``).

Both first :func:`prepare` the deployment as an operator would: migrate the
API database, cell0 and every cell, map them, start the compute agents,
then run ``discover_hosts``. ``auth_strategy`` goes into ``api.conf``'s
``[reference_api]``: ``keystone`` (the default: callers come from
keystonemiddleware's headers) or ``noauth`` (the demo's: a request naming no
project is the fixed admin caller, see :mod:`cellrouter.reference.auth`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cellrouter
from cellrouter import exception
from cellrouter.reference.api import create_app
from cellrouter.reference.auth import AUTH_STRATEGIES
from cellrouter.reference.compute import ComputeAgent
from cellrouter.reference.conductor import SuperConductor

__all__ = [
    "CellSpec",
    "EmbeddedDeployment",
    "ProcessDeployment",
    "Topology",
    "prepare",
    "write_configs",
]


@dataclasses.dataclass(frozen=True, slots=True)
class CellSpec:
    """One cell: its name, database, queue and compute hosts."""

    name: str
    database_connection: str
    transport_url: str
    hosts: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Topology:
    """The API database, cell0, the API-level queue and the cells."""

    api_database: str
    cell0_database: str
    api_transport_url: str
    cells: tuple[CellSpec, ...]

    @classmethod
    def sqlite(cls, workdir: Path, cells: int = 2, hosts_per_cell: int = 3) -> Topology:
        """Everything in SQLite files under ``workdir``, on ``fake://`` queues."""
        base = Path(workdir).resolve()

        def db(name: str) -> str:
            return f"sqlite:///{base / (name + '.db')}"

        return cls(
            api_database=db("api"),
            cell0_database=db("cell0"),
            api_transport_url="fake://api/",
            cells=tuple(
                CellSpec(
                    name=f"cell{n}",
                    database_connection=db(f"cell{n}"),
                    transport_url=f"fake://cell{n}/",
                    hosts=tuple(f"cell{n}-host{h}" for h in range(1, hosts_per_cell + 1)),
                )
                for n in range(1, cells + 1)
            ),
        )


_CELLS_OPTIONS = """
[cells]
scatter_timeout = 10
cell_down_interval = 30
rpc_send_timeout = 10
"""


def write_configs(
    topology: Topology, workdir: Path, auth_strategy: str = "keystone"
) -> dict[str, Path]:
    """Write ``api.conf`` (API and conductor) and ``<cell>.conf`` (its compute agents).

    Returns name -> path ("api", then each cell's name). The API-level
    services' ``[database]`` is cell0's, as in Nova; a cell's file names only
    its own database and queue. ``auth_strategy``: the API's
    ``[reference_api]/auth_strategy``.
    """
    if auth_strategy not in AUTH_STRATEGIES:
        raise exception.InvalidValue(
            what="auth_strategy", reason=f"one of {', '.join(AUTH_STRATEGIES)}"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {"api": workdir / "api.conf"}
    paths["api"].write_text(
        f"[DEFAULT]\ntransport_url = {topology.api_transport_url}\n\n"
        f"[api_database]\nconnection = {topology.api_database}\n\n"
        f"[database]\nconnection = {topology.cell0_database}\n\n"
        f"[reference_api]\nauth_strategy = {auth_strategy}\n" + _CELLS_OPTIONS
    )
    for cell in topology.cells:
        path = paths[cell.name] = workdir / f"{cell.name}.conf"
        path.write_text(
            f"[DEFAULT]\ntransport_url = {cell.transport_url}\n\n"
            f"[database]\nconnection = {cell.database_connection}\n" + _CELLS_OPTIONS
        )
    for path in paths.values():
        path.chmod(0o600)  # the files hold the URLs' passwords
    return paths


def prepare(topology: Topology, api_conf: Path) -> dict[str, cellrouter.CellMapping]:
    """Set this process up as an operator (``api_conf``), migrate every database, map
    cell0 and the cells (reusing mappings that exist). Returns name -> cell."""
    cellrouter.setup(["--config-file", str(api_conf)])
    cellrouter.sync_schema("api", topology.api_database)
    cellrouter.sync_schema("cell", topology.cell0_database)
    for spec in topology.cells:
        cellrouter.sync_schema("cell", spec.database_connection)
    command = cellrouter.command
    cells = {"cell0": command.map_cell0(database_connection=topology.cell0_database).cell}
    existing = {cell.name: cell for cell in command.list_cells()}
    for spec in topology.cells:
        cell = existing.get(spec.name)
        if cell is None:
            cell = command.create_cell(
                name=spec.name,
                database_connection=spec.database_connection,
                transport_url=spec.transport_url,
            ).cell
        cells[spec.name] = cell
    return cells


def _wait_http(url: str, timeout: float) -> None:
    """Wait until ``url`` answers HTTP (any status: a 401 without credentials is up too)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise exception.Unavailable(reason=f"{url} did not answer in {timeout:.0f} s")
        time.sleep(0.2)


class EmbeddedDeployment:
    """API, conductor and compute agents in this process (SQLite + ``fake://``)."""

    def __init__(
        self,
        topology: Topology,
        workdir: Path,
        port: int = 0,
        threads: int = 16,
        auth_strategy: str = "keystone",
    ) -> None:
        self.topology = topology
        self.workdir = Path(workdir)
        self.port = port
        self.threads = threads
        self.auth_strategy = auth_strategy
        self.cells: dict[str, cellrouter.CellMapping] = {}
        self.agents: list[ComputeAgent] = []
        self.conductor: SuperConductor | None = None
        self.discovered: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedDeployment:
        paths = write_configs(self.topology, self.workdir, self.auth_strategy)
        self.cells = prepare(self.topology, paths["api"])
        for spec in self.topology.cells:
            for host in spec.hosts:
                agent = ComputeAgent(host, spec.database_connection, spec.transport_url)
                self.agents.append(agent.start())
        self.discovered = cellrouter.command.discover_hosts()
        self.conductor = SuperConductor(host="conductor", sweep_interval=2.0, grace=2.0).start()
        from waitress import create_server

        self._server = create_server(
            create_app(), host="127.0.0.1", port=self.port, threads=self.threads
        )
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()
        _wait_http(self.url + "/cells", 30)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        services: list[Any] = [*self.agents, self.conductor] if self.conductor else self.agents
        with concurrent.futures.ThreadPoolExecutor(max(len(services), 1)) as pool:
            list(pool.map(lambda service: service.stop(), services))  # each waits for its poll
        self.conductor = None
        self.agents = []


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessDeployment:
    """API (gunicorn workers), conductor and one process per cell's agents."""

    def __init__(
        self,
        topology: Topology,
        workdir: Path,
        port: int = 0,
        api_workers: int = 2,
        auth_strategy: str = "keystone",
    ) -> None:
        self.topology = topology
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.api_workers = api_workers
        self.auth_strategy = auth_strategy
        self.cells: dict[str, cellrouter.CellMapping] = {}
        self.discovered: Any = None
        self.processes: dict[str, subprocess.Popen[str]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, module: str, args: Sequence[str], ready: str | None) -> None:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE if ready else log,
            stderr=log,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.processes[name] = process
        if ready is None:
            return
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the service says it is up
        if ready not in line:
            self.stop()
            text = (self.workdir / f"{name}.log").read_text()[-2000:]
            raise exception.Unavailable(reason=f"{name} did not start: {line!r} {text}")

    def start(self) -> ProcessDeployment:
        paths = write_configs(self.topology, self.workdir, self.auth_strategy)
        self.cells = prepare(self.topology, paths["api"])
        for spec in self.topology.cells:
            hosts = [arg for host in spec.hosts for arg in ("--host", host)]
            self._spawn(
                f"compute-{spec.name}",
                "cellrouter.reference.compute",
                ["--config-file", str(paths[spec.name]), *hosts],
                "compute ready",
            )
        self.discovered = cellrouter.command.discover_hosts()
        self._spawn(
            "conductor",
            "cellrouter.reference.conductor",
            ["--config-file", str(paths["api"]), "--host", "conductor", "--sweep-interval", "2"],
            "conductor ready",
        )
        self._spawn(
            "api",
            "cellrouter.reference.api",
            [
                "--config-file",
                str(paths["api"]),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.api_workers),
            ],
            None,
        )
        try:
            _wait_http(self.url + "/cells", 60)
        except exception.Unavailable:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self.processes = {}
