"""The cell compute agent: one compute host, configured with its cell only.

It knows ``[database]/connection`` and ``[DEFAULT]/transport_url`` of its
cell and nothing of the API database (it never needs it: a test proves it
never connects there). At start it registers its service and compute node in
its cell's database (:func:`cellrouter.register_compute_node`, so
``discover_hosts`` maps the host), then listens on ``compute.<host>`` in its
cell's queue and performs ``build`` and ``delete`` on the instance rows of
its cell. A flavor with ``fail_build`` fails the build on purpose: the
instance goes to ERROR with an instance fault.

Several agents of different cells can share a process (the embedded demo on
``fake://``): each one targets its own cell, built from its two URLs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

import cellrouter
from cellrouter import exception
from cellrouter.reference.flavors import Flavor

__all__ = ["ComputeAgent", "local_cell", "main"]

LOG = logging.getLogger(__name__)

#: HTTP-like code of the fault of a build that failed on the host.
BUILD_FAILED = 500


def local_cell(database_url: str | None = None, transport_url: str | None = None) -> Any:
    """This agent's own cell, from its two URLs (default: ``[database]``, ``[DEFAULT]``).

    A :class:`cellrouter.CellMapping` value built here, not read from the API
    database: its uuid is derived from the URLs, so it is stable and never
    collides with a mapped cell's.
    """
    conf = cellrouter.CONF
    db = database_url or conf.database.connection
    mq = transport_url or conf.transport_url
    exception.InvalidValue.require(database_connection=db, transport_url=mq)
    return cellrouter.CellMapping(
        id=0,
        uuid=str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"{db} {mq}")),
        name="local",
        database_connection=db,
        transport_url=mq,
    )


class ComputeAgent:
    """A compute host: registers itself, then serves ``build``/``delete`` casts."""

    def __init__(
        self,
        host: str,
        database_url: str | None = None,
        transport_url: str | None = None,
        vcpus: int = 64,
        memory_mb: int = 262144,
        local_gb: int = 4096,
    ) -> None:
        self.host = host
        self.cell = local_cell(database_url, transport_url)
        self.vcpus, self.memory_mb, self.local_gb = vcpus, memory_mb, local_gb
        self.builds = 0
        self.deletes = 0
        self._server: Any = None

    def context(self) -> Any:
        """An admin context targeted at this agent's cell (a ``target_cell`` copy)."""
        with cellrouter.target_cell(cellrouter.get_admin_context(), self.cell) as cctx:
            return cctx

    def start(self) -> ComputeAgent:
        cctx = self.context()
        cellrouter.register_compute_node(
            cctx, self.host, vcpus=self.vcpus, memory_mb=self.memory_mb, local_gb=self.local_gb
        )
        self._server = cctx.rpc_server("compute", self.host, [self])
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.wait()
            self._server = None

    # -- RPC ------------------------------------------------------------------

    def build(self, ctxt: dict[str, Any], instance_uuid: str, flavor: dict[str, Any]) -> None:
        """Spawn the instance (here: mark it active); ignored unless it is ``building``."""
        cctx = self.context()
        try:
            row = cellrouter.get_instance(cctx, instance_uuid, columns=("vm_state", "host"))
        except exception.InstanceNotFound:
            return  # deleted while the cast was on its way
        if row["vm_state"] != "building" or row["host"] != self.host:
            return
        size = Flavor.from_dict(flavor)
        if size.fail_build:
            cellrouter.update_instance(
                cctx, instance_uuid, vm_state="error", task_state=None, power_state=0
            )
            cellrouter.record_instance_fault(
                cctx,
                instance_uuid,
                code=BUILD_FAILED,
                message=f"Build failed on {self.host}: flavor {size.name} fails on purpose.",
                host=self.host,
            )
            cellrouter.add_compute_usage(
                cctx,
                self.host,
                vcpus=-size.vcpus,
                memory_mb=-size.memory_mb,
                local_gb=-size.root_gb,
            )
        else:
            cellrouter.update_instance(
                cctx,
                instance_uuid,
                vm_state="active",
                task_state=None,
                power_state=1,
                launched_at=_now(),
            )
        self.builds += 1

    def delete(self, ctxt: dict[str, Any], instance_uuid: str) -> None:
        """Delete the instance: free its usage (unless its build failed), soft-delete its row."""
        cctx = self.context()
        try:
            row = cellrouter.get_instance(
                cctx, instance_uuid, columns=("vm_state", "host", "vcpus", "memory_mb", "root_gb")
            )
        except exception.InstanceNotFound:
            return
        try:
            cellrouter.destroy_instance(cctx, instance_uuid)
        except exception.InstanceNotFound:
            return  # a concurrent delete won
        if row["host"] == self.host and row["vm_state"] in ("building", "active"):
            cellrouter.add_compute_usage(
                cctx,
                self.host,
                vcpus=-(row["vcpus"] or 0),
                memory_mb=-(row["memory_mb"] or 0),
                local_gb=-(row["root_gb"] or 0),
            )
        self.deletes += 1


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cellrouter.reference.compute --config-file cell1.conf --host h1 [--host h2]``."""
    parser = argparse.ArgumentParser(prog="cellrouter-reference-compute")
    parser.add_argument("--config-file", action="append", default=[], required=True)
    parser.add_argument("--host", action="append", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s compute %(message)s")
    conf = cellrouter.setup([arg for f in args.config_file for arg in ("--config-file", f)])
    if conf.api_database.connection:
        parser.error("a compute agent's configuration must not set [api_database]/connection")
    agents = [ComputeAgent(host).start() for host in args.host]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("compute ready: " + " ".join(args.host), flush=True)
    stop.wait()
    for agent in agents:
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
