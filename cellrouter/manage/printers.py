"""What ``cellrouter-manage`` prints: one printer per command result type.

A printer takes the :class:`~cellrouter.manage.verbs.Run` of a verb and
prints its result: data and summaries on stdout, per-cell problems on stderr,
one line each. Exit codes are not decided here: the verbs' exit tables do
(:mod:`cellrouter.manage.catalog`). Every URL is masked unless the operator
asked for secrets (``list_cells --verbose``). The feedback callbacks print
while a command runs (migration and mapping progress, cells that failed).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from cellrouter.across.probes import Probe
from cellrouter.exception import CellUnavailable
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.manage.commands import (
    Cell0Result,
    CellStatus,
    CreateCellResult,
    DeleteCellResult,
    InstanceState,
    MapCellResult,
    SchemaState,
    SetupResult,
    SyncResult,
    UpdateResult,
    VerifyResult,
    cache_status,
)
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.manage.instance_mapper import MapInstancesResult
from cellrouter.manage.verbs import Run
from cellrouter.url import mask_url

__all__ = [
    "cell0",
    "cell_and_hosts",
    "cell_created",
    "cell_deleted",
    "cell_updated",
    "cells",
    "discovery",
    "err",
    "host_deleted",
    "hosts",
    "instances_mapped",
    "mapping_progress",
    "one_line",
    "out",
    "revision",
    "setup",
    "status_details",
    "statuses",
    "sync",
    "sync_feedback",
    "syncs",
    "table",
    "verification",
]


def out(line: str = "") -> None:
    print(line, file=sys.stdout)


def err(line: str) -> None:
    print(line, file=sys.stderr)


def one_line(text: object) -> str:
    """``text`` masked, as one line (its first)."""
    lines = mask_url(str(text)).strip().splitlines()
    return lines[0] if lines else ""


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table (list commands)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    return "\n".join([rule, line(headers), rule, *(line(r) for r in cells), rule])


def _shown(url: str, verbose: bool = False) -> str:
    """``url`` as printed: masked unless the operator asked for secrets."""
    return url if verbose else mask_url(url)


# -- schemas -------------------------------------------------------------------------


def _print_sync(result: SyncResult) -> None:
    """One line per database: what it is, what happened, where it is (masked)."""
    where = f" ({mask_url(result.url)})" if result.url else ""
    if result.skipped is not None:
        err(one_line(f"WARNING: {result.target}: not migrated: {result.skipped}{where}"))
    elif result.before == result.after:
        out(f"{result.target}: already at {result.after or 'base'}{where}")
    else:
        out(f"{result.target}: {result.before or 'base'} -> {result.after or 'base'}{where}")


def sync(run: Run[SyncResult]) -> None:
    _print_sync(run.result)


def revision(run: Run[str | None]) -> None:
    out(run.result or "base")


def sync_feedback(run: Run[list[SyncResult]]) -> dict[str, Any]:
    """``db sync``: each database as it is migrated; each cell that fails, one stderr line."""

    def failed(exc: CellUnavailable) -> None:
        run.failures.append(exc)
        err(one_line(exc))

    return {"progress": _print_sync, "failed": failed}


def syncs(run: Run[list[SyncResult]]) -> None:
    """``db sync``: each database was printed as it went; ``--all-cells`` adds the totals."""
    if run.args.all_cells:
        out(f"{len(run.result)} cell(s) migrated, {len(run.failures)} failed.")


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        err(one_line(f"WARNING: {warning}"))


# -- cells ---------------------------------------------------------------------------


def cell0(run: Run[Cell0Result]) -> None:
    if run.result.created:
        out(f"Cell0 mapped to database {mask_url(run.result.cell.database_connection)}.")
    else:
        out("Cell0 is already setup.")


def cell_created(run: Run[CreateCellResult]) -> None:
    _warn(run.result.warnings)
    if run.args.verbose:
        out(run.result.cell.uuid)


def cells(run: Run[list[CellMapping]]) -> None:
    verbose = run.args.verbose
    rows = [
        (
            cell.name,
            cell.uuid,
            _shown(cell.transport_url, verbose),
            _shown(cell.database_connection, verbose),
            cell.disabled,
        )
        for cell in run.result
    ]
    out(table(["Name", "UUID", "Transport URL", "Database Connection", "Disabled"], rows))


def cell_updated(run: Run[UpdateResult]) -> None:
    result = run.result
    changed = [
        ("enabled" if not result.cell.disabled else "disabled") if field == "disabled" else field
        for field in result.changed
    ]
    parts = [f"updated: {', '.join(changed)}"] if changed else []
    if result.already:
        parts.append(f"already {result.already}")
    out(f"Cell {result.cell.identity}: {'; '.join(parts) or 'nothing to update'}.")
    _warn(result.warnings)


def cell_deleted(run: Run[DeleteCellResult]) -> None:
    result = run.result
    removed = ""
    if result.host_mappings or result.instance_mappings:
        removed = (
            f" with {result.host_mappings} host mapping(s) and "
            f"{result.instance_mappings} instance mapping(s)"
        )
    out(f"Cell {result.cell.identity} deleted{removed}.")


# -- hosts and instances -------------------------------------------------------------


def _report_discovery(result: DiscoveryResult, verbose: bool) -> None:
    """New hosts (verbose) on stdout; conflicts and unreadable cells on stderr."""
    if verbose:
        for cell_uuid, host in result.new_hosts:
            out(f"Host {host} mapped to cell {cell_uuid}.")
    for conflict in result.conflicts:
        err(
            f"Host {conflict.host} found in cell {conflict.cell_uuid} is already mapped to "
            f"cell {conflict.mapped_cell_uuid}: left there."
        )
    for cell_uuid, reason in sorted(result.failed_cells.items()):
        # the reason (a CellUnavailable's message) names the cell already: once is enough
        line = (
            f"Skipped: {reason}" if cell_uuid in reason else f"Cell {cell_uuid} skipped: {reason}"
        )
        err(one_line(line))


def discovery(run: Run[DiscoveryResult]) -> None:
    result = run.result
    _report_discovery(result, run.args.verbose)
    out(
        f"{len(result.new_hosts)} new host(s) mapped; {result.cells_scanned} cell(s) "
        f"scanned, {len(result.failed_cells)} failed."
    )


def _progress(examined: int, mapped: int) -> None:
    sys.stderr.write(f"\rexamined {examined} instance(s), mapped {mapped}")
    sys.stderr.flush()


def mapping_progress(run: Run[MapInstancesResult]) -> dict[str, Any]:
    """``map_instances``: running totals on one rewritten line, on a terminal only."""
    return {"progress": _progress if sys.stderr.isatty() else None}


def instances_mapped(run: Run[MapInstancesResult]) -> None:
    result = run.result
    if sys.stderr.isatty() and result.examined:  # end the progress line
        err("")
    if result.complete:
        out(f"All instances of cell {run.args.cell_uuid} are mapped ({result.mapped} new).")
    else:
        out(f"{result.mapped} instance(s) mapped; more remain: run the command again.")


def cell_and_hosts(run: Run[MapCellResult]) -> None:
    result = run.result
    _report_discovery(result.discovery, run.args.verbose)
    state = "created" if result.created else "already mapped"
    out(f"Cell {result.cell.identity} {state}; {len(result.discovery.new_hosts)} new host(s).")
    if run.args.verbose:
        out(result.cell.uuid)


def setup(run: Run[SetupResult]) -> None:
    result = run.result
    schema = result.cell0_schema
    if schema.skipped is not None:  # nova-manage: "Unable to sync cell0 schema", and on
        err(one_line(f"Unable to sync the cell0 schema ({schema.url}): {schema.skipped}"))
    _report_discovery(result.cell.discovery, verbose=False)
    out(
        f"Done: cell0 {'mapped' if result.cell0.created else 'already mapped'} "
        f"(schema {'NOT MIGRATED' if schema.skipped else schema.after or 'base'}), "
        f"cell {result.cell.cell.identity} "
        f"{'created' if result.cell.created else 'already mapped'}, "
        f"{len(result.cell.discovery.new_hosts)} new host(s), "
        f"{result.instances.mapped} new instance mapping(s)."
    )


_VERIFIED: dict[InstanceState, str] = {
    InstanceState.MAPPED: "Instance {uuid} is in cell {cell}.",
    InstanceState.NOT_MAPPED: "Instance {uuid} is not mapped.",
    InstanceState.BUILDING: (
        "Instance {uuid} is not mapped to a cell yet: it is probably still building."
    ),
    InstanceState.SOFT_DELETED: (
        "Instance {uuid} has been deleted in cell {cell}; its mapping remains."
    ),
    InstanceState.ARCHIVED: (
        "Instance {uuid} has been archived in cell {cell}; its instance mapping remains."
    ),
    InstanceState.MISSING: (
        "Instance {uuid} is mapped to cell {cell}, which does not hold it (purged after "
        "archiving, or never created there)."
    ),
    InstanceState.CELL_UNREACHABLE: (
        "Instance {uuid} is mapped to cell {cell}, which is unreachable: {reason}"
    ),
}


def verification(run: Run[VerifyResult]) -> None:
    result = run.result
    if not run.args.quiet:
        cell = result.cell.identity if result.cell is not None else None
        message = _VERIFIED[result.state]
        out(mask_url(message.format(uuid=result.uuid, cell=cell, reason=result.reason)))


def hosts(run: Run[list[HostMapping]]) -> None:
    rows = [(m.cell_mapping.name, m.cell_mapping.uuid, m.host) for m in run.result]
    out(table(["Cell Name", "Cell UUID", "Hostname"], rows))


def host_deleted(run: Run[HostMapping]) -> None:
    out(f"Host {run.result.host} deleted from cell {run.result.cell_mapping.identity}.")


# -- status --------------------------------------------------------------------------


def _probe_text(probe: Probe) -> str:
    if probe.state == "ok" and probe.latency_ms:
        return f"ok ({probe.latency_ms:.1f} ms)"
    return {"unreachable": "UNREACHABLE"}.get(probe.state, probe.state)


def _schema_text(st: CellStatus) -> str:
    if st.schema in (SchemaState.BEHIND, SchemaState.UNKNOWN):
        return f"{st.schema.value} (rev {st.revision}, head {st.head})"
    return "-" if st.schema is SchemaState.UNCHECKED else st.schema.value


def status_details(run: Run[list[CellStatus]]) -> None:
    """``status --verbose``: the lines under the table, per cell, then for the whole
    deployment (where counters of this process's mapping index belong)."""
    for st in run.result:
        if st.cell_hosts is not None:
            out(
                f"{st.cell.identity}: {st.cell_hosts} compute host(s) and "
                f"{st.cell_instances} live instance(s) in its database; "
                f"{st.hosts} host mapping(s) and {st.instances} instance mapping(s)."
            )
    cache = cache_status()
    if not cache.in_use:
        state = "off"
    else:
        state = "answers" if cache.problem is None else f"does not answer ({cache.problem})"
    stats = cache.stats
    out(
        f"Mapping cache: {cache.backend}, {state}. This process: {stats.hits} hit(s), "
        f"{stats.misses} miss(es), {stats.invalidations} invalidation(s), {stats.errors} "
        f"backend error(s), {stats.refreshes} cell list read(s)."
    )


def statuses(run: Run[list[CellStatus]]) -> None:
    verbose = run.args.verbose
    headers = ["Name", "UUID", "Disabled", "Database", "Queue", "Schema", "Hosts", "Instances"]
    if verbose:
        headers += ["Database Connection", "Transport URL"]
    rows = []
    for st in run.result:
        row = [
            st.cell.name,
            st.cell.uuid,
            st.cell.disabled,
            _probe_text(st.probe.database),
            _probe_text(st.probe.queue),
            _schema_text(st),
            st.hosts,
            st.instances,
        ]
        if verbose:
            row += [mask_url(st.cell.database_connection), mask_url(st.cell.transport_url)]
        rows.append(row)
    out(table(headers, rows))
    for st in run.result:
        for what, probe in (("database", st.probe.database), ("queue", st.probe.queue)):
            if probe.error and (probe.failed or verbose):
                out(mask_url(f"{st.cell.identity}: {what}: {probe.error}"))
        if st.schema_error:
            out(one_line(f"{st.cell.identity}: schema: {st.schema_error}"))
    if verbose:
        status_details(run)
    down = sum(not st.reachable for st in run.result)
    if down:
        out(f"{down} of {len(run.result)} cell(s) unreachable.")
    else:
        out(f"All {len(run.result)} cell(s) reachable.")
    off = [st for st in run.result if st.schema_off_head]
    if off:
        out(f"{len(off)} cell(s) not at the cell schema head {off[0].head}.")
