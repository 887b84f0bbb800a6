"""The super conductor: turns build requests into instances in cells.

The API accepts a boot by writing a build request and an instance mapping
with no cell, then casts ``schedule_and_build(instance_uuid)`` to topic
``conductor`` on its own queue (``[DEFAULT]/transport_url``). The conductor
handles one build request in these steps, in this order:

1. ``read``: the build request and the instance mapping (no build request:
   deleted while queued, stop; no mapping: the API never finished accepting
   the boot, so the build request is deleted and nothing else happens).
2. ``place``: look for the instance's row in every cell, cell0 included (a
   run that crashed after step 3 left one: it is adopted); else pick a host
   among the enabled cells' mapped hosts whose compute node has room (host
   mappings + compute node capacity); no host: the instance goes to cell0.
3. ``create``: the instance row in the chosen cell (``building`` on its
   host, its usage claimed on the node), or in cell0 in ``error`` with an
   instance fault.
4. ``map``: the instance mapping points at the cell.
5. ``cast``: ``build`` to ``compute.<host>`` on the cell's queue (not for
   cell0). The compute agent ignores a build of an instance that is no
   longer ``building``, so a repeated cast is harmless.
6. ``delete``: the build request.

Why this order: every crash leaves something the user can see and the
conductor can finish. Until step 4 the API answers a show from the build
request (status ``BUILD``); after it, from the cell. The build request is
deleted last, so :meth:`SuperConductor.sweep` (at start, then every
``sweep_interval`` seconds, for build requests older than ``grace``)
finds every build that did not finish and runs it again from step 1:
step 2 adopts a row created before the crash, steps 4-6 are idempotent.
A crash between the row and its usage claim (both in step 3) under-counts
one guest on that node. In a retried build, a cell that cannot be read in
step 2 postpones it to the next sweep (the row might be there); the API's
cast is delivered at most once, so a first attempt only asks the cells that
answer.

A user deleting a server while it builds: the API deletes the build request
(and the mapping, if it still has no cell); step 4 then finds no mapping and
the conductor removes the row it created; step 6 finding no build request
casts ``delete`` to the host when the mapping is gone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import cellrouter
from cellrouter import exception
from cellrouter.reference.flavors import Flavor

__all__ = ["CONDUCTOR_TOPIC", "STEPS", "Placement", "SuperConductor", "main"]

LOG = logging.getLogger(__name__)

#: The topic the super conductor listens on, on the API-level queue.
CONDUCTOR_TOPIC = "conductor"
#: The steps of one build, in order (see the module docstring).
STEPS = ("read", "place", "create", "map", "cast", "delete")
#: HTTP-like code of the fault recorded for an instance no host could take.
NO_VALID_HOST = 500


class Placement:
    """Where an instance goes: a cell and a host (None: buried in cell0)."""

    __slots__ = ("adopted", "cell", "host")

    def __init__(
        self, cell: cellrouter.CellMapping, host: str | None, adopted: bool = False
    ) -> None:
        self.cell = cell
        self.host = host
        self.adopted = adopted


def _find_row(cctx: cellrouter.RequestContext, instance_uuid: str) -> dict[str, Any] | None:
    try:
        row = cellrouter.get_instance(cctx, instance_uuid, columns=("host", "vm_state"))
    except exception.InstanceNotFound:
        return None
    return dict(row)


class SuperConductor:
    """Consumes build requests (RPC casts, plus a sweep for the ones left behind)."""

    def __init__(
        self,
        host: str | None = None,
        sweep_interval: float = 10.0,
        grace: float = 5.0,
        scatter_timeout: float | None = None,
    ) -> None:
        self.host = host or f"conductor-{socket.gethostname()}"
        self.sweep_interval = sweep_interval
        self.grace = grace
        self.scatter_timeout = scatter_timeout
        #: called after each step with (step, instance_uuid): tests crash here
        self.after_step: Callable[[str, str], None] | None = None
        self._busy: set[str] = set()
        #: builds this process started (bounded: cleared when large)
        self._attempted: set[str] = set()
        self._busy_lock = threading.Lock()
        self._server: Any = None
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- the service ----------------------------------------------------------

    def start(self) -> SuperConductor:
        """Listen on ``conductor`` (this service's own queue) and start sweeping."""
        ctx = cellrouter.get_admin_context()
        self._server = ctx.rpc_server(CONDUCTOR_TOPIC, self.host, [self])
        self._server.start()
        self._stop.clear()
        self._sweeper = threading.Thread(
            target=self._sweep_loop, name="conductor-sweep", daemon=True
        )
        self._sweeper.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop()
            self._server.wait()
            self._server = None
        if self._sweeper is not None:
            self._sweeper.join(10)
            self._sweeper = None

    def _sweep_loop(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self.sweep(min_age=0.0 if first else self.grace)
            except Exception as exc:  # noqa: BLE001 - a periodic task survives anything
                LOG.error("Build request sweep failed: %s", cellrouter.mask_url(str(exc)))
            first = False
            if self._stop.wait(self.sweep_interval):
                break

    # -- RPC ------------------------------------------------------------------

    def schedule_and_build(self, ctxt: dict[str, Any], instance_uuid: str) -> None:
        """RPC: build ``instance_uuid`` (errors are logged; the sweep tries again)."""
        try:
            self.build(instance_uuid, first_attempt=True)
        except Exception as exc:  # noqa: BLE001 - the build request stays: swept later
            LOG.warning("Build of %s postponed: %s", instance_uuid, cellrouter.mask_url(str(exc)))

    # -- the work ---------------------------------------------------------------

    def sweep(self, min_age: float | None = None) -> int:
        """Build every build request older than ``min_age`` (default ``grace``) seconds.

        Returns how many were handled. What a crash or a lost cast left behind
        is finished here.
        """
        ctx = cellrouter.get_admin_context()
        age = self.grace if min_age is None else min_age
        now = time.time()
        done = 0
        for request in cellrouter.BuildRequest.get_all(ctx):
            created = request.created_at
            if created is not None and age > 0:
                seconds = now - created.replace(tzinfo=datetime.UTC).timestamp()
                if seconds < age:
                    continue
            try:
                if self.build(request.instance_uuid) is not None:
                    done += 1
            except Exception as exc:  # noqa: BLE001 - one bad build must not stop the sweep
                LOG.warning(
                    "Build of %s postponed: %s",
                    request.instance_uuid,
                    cellrouter.mask_url(str(exc)),
                )
        return done

    def build(self, instance_uuid: str, first_attempt: bool = False) -> str | None:
        """Run the steps for ``instance_uuid``; returns the cell uuid it landed in.

        None: nothing to do (no build request, or another thread is on it).
        ``first_attempt``: the API's cast, which is delivered at most once, so
        no earlier run can have created a row in a cell that does not answer
        now; a sweep (or a second attempt in this process) must be sure.
        """
        with self._busy_lock:
            if instance_uuid in self._busy:
                return None
            self._busy.add(instance_uuid)
            strict = not first_attempt or instance_uuid in self._attempted
            if len(self._attempted) > 100_000:
                self._attempted.clear()
            self._attempted.add(instance_uuid)
        try:
            return self._build(cellrouter.get_admin_context(), instance_uuid, strict)
        finally:
            with self._busy_lock:
                self._busy.discard(instance_uuid)

    def _step(self, step: str, instance_uuid: str) -> None:
        hook = self.after_step
        if hook is not None:
            hook(step, instance_uuid)

    def _build(
        self, ctx: cellrouter.RequestContext, instance_uuid: str, strict: bool
    ) -> str | None:
        # 1. read
        try:
            request = cellrouter.BuildRequest.get_by_instance_uuid(ctx, instance_uuid)
        except exception.BuildRequestNotFound:
            return None
        try:
            cellrouter.InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
        except exception.InstanceMappingNotFound:
            request.destroy(ctx)  # the API never answered this boot
            return None
        spec = json.loads(request.instance or "{}")
        flavor = Flavor.from_dict(spec["flavor"])
        self._step("read", instance_uuid)

        # 2. place
        placement = self._adopt(ctx, instance_uuid, strict) or self._place(ctx, flavor)
        self._step("place", instance_uuid)

        # 3. create
        if not placement.adopted:
            self._create(ctx, placement, instance_uuid, request, spec, flavor)
        elif placement.cell.is_cell0():
            self._record_no_host(ctx, placement.cell, instance_uuid)
        self._step("create", instance_uuid)

        # 4. map
        try:
            mapping = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
        except exception.InstanceMappingNotFound:
            # deleted while building: remove what step 3 created
            with cellrouter.target_cell(ctx, placement.cell) as cctx:
                try:
                    cellrouter.destroy_instance(cctx, instance_uuid)
                except exception.InstanceNotFound:
                    pass
                if placement.host is not None:
                    _claim(cctx, placement.host, flavor, -1)
            return None
        if mapping.cell_uuid != placement.cell.uuid:
            mapping.set_cell(ctx, placement.cell)
        self._step("map", instance_uuid)

        # 5. cast
        if placement.host is not None:
            with cellrouter.target_cell(ctx, placement.cell) as cctx:
                cctx.rpc_client("compute", server=placement.host).cast(
                    ctx.to_dict(), "build", instance_uuid=instance_uuid, flavor=flavor.to_dict()
                )
        self._step("cast", instance_uuid)

        # 6. delete
        try:
            request.destroy(ctx)
        except exception.BuildRequestNotFound:
            self._deleted_while_building(ctx, instance_uuid, placement)
        self._step("delete", instance_uuid)
        return placement.cell.uuid

    def _cells(self, ctx: cellrouter.RequestContext) -> list[cellrouter.CellMapping]:
        return cellrouter.CellMapping.get_all(ctx)

    def _adopt(
        self, ctx: cellrouter.RequestContext, instance_uuid: str, strict: bool
    ) -> Placement | None:
        """The row a crashed run created, in whichever cell it is (None: none yet).

        ``strict``: a cell that does not answer might hold it, so the build waits.
        """
        cells = self._cells(ctx)
        results = cellrouter.scatter_gather_cells(
            ctx, cells, self.scatter_timeout, _find_row, instance_uuid
        )
        failed = [cell for cell in cells if cellrouter.is_cell_failure(results[cell.uuid])]
        for cell in cells:
            row = results[cell.uuid]
            if isinstance(row, dict):
                return Placement(cell, row["host"], adopted=True)
        if failed and strict:
            raise exception.CellUnavailable(
                cell=failed[0].identity,
                reason="cannot tell whether an earlier attempt created the instance there",
            )
        return None

    def _place(self, ctx: cellrouter.RequestContext, flavor: Flavor) -> Placement:
        """A mapped host with room in an enabled cell, weighted by free memory; else cell0."""
        cells = {
            cell.uuid: cell
            for cell in cellrouter.CellMapping.get_by_disabled(ctx, False)
            if not cell.is_cell0()
        }
        mapped: dict[str, set[str]] = {}
        for host in cellrouter.HostMapping.get_all(ctx):
            if host.cell_mapping.uuid in cells:
                mapped.setdefault(host.cell_mapping.uuid, set()).add(host.host)
        targets = [cells[uuid] for uuid in mapped]
        results = cellrouter.scatter_gather_cells(
            ctx, targets, self.scatter_timeout, cellrouter.get_compute_nodes
        )
        candidates: list[tuple[cellrouter.CellMapping, cellrouter.ComputeNode]] = []
        for cell in targets:
            nodes = results[cell.uuid]
            if not isinstance(nodes, list):
                continue  # a cell that failed takes no new instance
            candidates += [
                (cell, node)
                for node in nodes
                if node.host in mapped[cell.uuid]
                and node.fits(flavor.vcpus, flavor.memory_mb, flavor.root_gb)
            ]
        if not candidates:
            return Placement(_cell0(ctx), None)
        weights = [max(node.free[1], 1) for _, node in candidates]
        cell, node = random.choices(candidates, weights=weights)[0]
        return Placement(cell, node.host)

    def _create(
        self,
        ctx: cellrouter.RequestContext,
        placement: Placement,
        instance_uuid: str,
        request: cellrouter.BuildRequest,
        spec: dict[str, Any],
        flavor: Flavor,
    ) -> None:
        values: dict[str, Any] = {
            "uuid": instance_uuid,
            "project_id": request.project_id,
            "user_id": spec.get("user_id"),
            "display_name": spec.get("display_name"),
            "hostname": spec.get("display_name"),
            "vcpus": flavor.vcpus,
            "memory_mb": flavor.memory_mb,
            "root_gb": flavor.root_gb,
            "ephemeral_gb": 0,
            "key_name": flavor.name,  # the reference keeps the flavor's name here
            "created_at": request.created_at,
        }
        with cellrouter.target_cell(ctx, placement.cell) as cctx:
            if placement.host is None:
                cellrouter.create_instance(cctx, vm_state="error", power_state=0, **values)
                self._record_no_host(ctx, placement.cell, instance_uuid)
                return
            cellrouter.create_instance(
                cctx,
                vm_state="building",
                task_state="spawning",
                power_state=0,
                host=placement.host,
                node=placement.host,
                **values,
            )
            _claim(cctx, placement.host, flavor, 1)

    def _record_no_host(
        self, ctx: cellrouter.RequestContext, cell0: cellrouter.CellMapping, instance_uuid: str
    ) -> None:
        with cellrouter.target_cell(ctx, cell0) as cctx:
            if not cellrouter.get_instance_faults(cctx, instance_uuid, limit=1):
                cellrouter.record_instance_fault(
                    cctx,
                    instance_uuid,
                    code=NO_VALID_HOST,
                    message="No valid host was found: no enabled cell has a host with room.",
                )

    def _deleted_while_building(
        self, ctx: cellrouter.RequestContext, instance_uuid: str, placement: Placement
    ) -> None:
        try:
            cellrouter.InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
        except exception.InstanceMappingNotFound:
            if placement.host is not None:
                with cellrouter.target_cell(ctx, placement.cell) as cctx:
                    cctx.rpc_client("compute", server=placement.host).cast(
                        ctx.to_dict(), "delete", instance_uuid=instance_uuid
                    )
            else:
                with cellrouter.target_cell(ctx, placement.cell) as cctx:
                    try:
                        cellrouter.destroy_instance(cctx, instance_uuid)
                    except exception.InstanceNotFound:
                        pass


def _cell0(ctx: cellrouter.RequestContext) -> cellrouter.CellMapping:
    return cellrouter.CellMapping.get_by_uuid(ctx, cellrouter.CELL0_UUID)


def _claim(cctx: cellrouter.RequestContext, host: str, flavor: Flavor, sign: int) -> None:
    """Claim (sign 1) or release (-1) a guest of ``flavor`` on ``host``'s node."""
    cellrouter.add_compute_usage(
        cctx,
        host,
        vcpus=sign * flavor.vcpus,
        memory_mb=sign * flavor.memory_mb,
        local_gb=sign * flavor.root_gb,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cellrouter.reference.conductor --config-file api.conf``: run until SIGTERM."""
    parser = argparse.ArgumentParser(prog="cellrouter-reference-conductor")
    parser.add_argument("--config-file", action="append", default=[], required=True)
    parser.add_argument("--host", default=None)
    parser.add_argument("--sweep-interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s conductor %(message)s")
    cellrouter.setup([arg for f in args.config_file for arg in ("--config-file", f)])
    conductor = SuperConductor(host=args.host, sweep_interval=args.sweep_interval).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("conductor ready", flush=True)
    stop.wait()
    conductor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
