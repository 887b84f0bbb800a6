"""Every ``cellrouter-manage`` verb, each declared once.

One :class:`~cellrouter.manage.verbs.Verb` per command: the
:mod:`cellrouter.manage.commands` function it calls, its options, help,
printer and exit table. :mod:`cellrouter.manage.cli` builds the parser, the
``--help`` texts and the error-to-code mapping from this list alone, so a
new verb is one entry here plus, for a new result type, a printer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from cellrouter.db import dberror
from cellrouter.exception import (
    ApiDatabaseUnavailable,
    CellDatabaseMissing,
    CellHasHosts,
    CellHasInstances,
    CellHasOnlyDeletedInstances,
    CellIsCell0,
    CellMappingNotFound,
    CellUnavailable,
    ConflictingOptions,
    DatabaseUnavailable,
    DuplicateCellURL,
    HostHasInstances,
    HostInOtherCell,
    HostMappingNotFound,
    Invalid,
    InvalidMaxCount,
    InvalidURL,
    InvalidValue,
    MissingURL,
    NoComputeHosts,
)
from cellrouter.manage import archive, archive_output, commands, printers
from cellrouter.manage.commands import InstanceState
from cellrouter.manage.verbs import EXIT_UNEXPECTED, EXIT_USAGE, Exit, Opt, Run, Verb

__all__ = ["CATEGORIES", "VERBS"]

#: category -> its help, in the order ``--help`` lists them
CATEGORIES: dict[str, str] = {
    "api_db": "API database schema",
    "db": "cell database schema",
    "cell_v2": "cells v2: cell, host and instance mappings",
}

_DISCOVERY_LOG = "cellrouter.manage.discovery"
_URL_HELP = "(default: [database]/connection)"
_MQ_HELP = "(default: [DEFAULT]/transport_url)"
_BEFORE_HELP = "only rows deleted before DATE (YYYY-MM-DD [HH:MM:SS] or as date prints it)"
_BEFORE_HINT = "Pass --before as YYYY-MM-DD [HH:MM:SS] or as the date command prints it."
_MAX_ROWS_HINT = f"Pass --max_rows as a number of rows from 1 to {archive.MAX_ROWS_LIMIT}."
_VERSION = Opt("version", help="target revision (default: head)")


def _pass_option(exc: BaseException, verb: Verb) -> str | None:
    """A missing URL: the flag of this verb that gives it (the error's ``option``)."""
    flag = verb.flag_for(str(getattr(exc, "kwargs", {}).get("option", "")))
    return f"Pass it with {flag}." if flag else None


def _in_state(*states: InstanceState) -> Callable[[Run[Any]], bool]:
    """verify_instance's exit rule for ``states``."""
    return lambda run: run.result.state in states


def _failed(run: Run[Any]) -> bool:
    return bool(run.failures)


def _api_db_synced(exc: BaseException, verb: Verb) -> str | None:
    """The API database answered but failed (no tables?): was its schema ever synced?

    (The engine's hook raises connection failures from the driver's own error;
    :func:`~cellrouter.manage.schema.naming_option` raises the rest from SQLAlchemy's.)
    """
    cause = exc.__cause__
    if not isinstance(cause, sa.exc.DBAPIError) or dberror.is_connection_error(cause):
        return None
    return "Has api_db sync been run? (--local_cell migrates [database]/connection alone.)"


def _create_database(exc: BaseException, verb: Verb) -> str | None:
    """A cell database that does not exist: which one to create (the error names it)."""
    database = exc.kwargs.get("database") if isinstance(exc, CellDatabaseMissing) else None
    return f"Create the database {database}, then run {verb.name} again." if database else None


VERBS: tuple[Verb, ...] = (
    # -- api_db / db --------------------------------------------------------------
    Verb(
        "api_db",
        commands.api_db_sync,
        "Migrate the API database.",
        printers.sync,
        name="sync",
        options=(_VERSION,),
        exits=(Exit(0, "done"),),
    ),
    Verb(
        "api_db",
        commands.api_db_version,
        "Print the API database's revision.",
        printers.revision,
        name="version",
        exits=(Exit(0, "printed"),),
    ),
    Verb(
        "db",
        commands.db_sync,
        "Migrate cell0 (when mapped), then [database]/connection (or every cell). "
        "One line per database, its URL masked.",
        printers.syncs,
        name="sync",
        options=(
            _VERSION,
            Opt(
                "--local_cell",
                switch=True,
                help="only [database]/connection: not cell0 (nova-manage's --local_cell)",
            ),
            Opt(
                "--all-cells",
                switch=True,
                help="migrate every mapped cell, cell0 included, one after another",
            ),
        ),
        exits=(
            Exit(0, "done (cell0 not mapped: said on stderr, not migrated)"),
            Exit(
                EXIT_USAGE,
                "--all-cells with --local_cell",
                ConflictingOptions,
                hint="Pass either --all-cells or --local_cell, not both.",
            ),
            Exit(
                1,
                "the API database (where cell0's mapping is) cannot be used",
                ApiDatabaseUnavailable,
                hint=_api_db_synced,
            ),
            Exit(
                EXIT_UNEXPECTED,
                "a cell's database could not be reached or does not exist (cell0: "
                "[database]/connection is then not migrated; with --all-cells the other cells "
                "are still migrated; each failed cell is one line on stderr)",
                when=_failed,
            ),
        ),
        feedback=printers.sync_feedback,
    ),
    Verb(
        "db",
        commands.db_version,
        "Print [database]/connection's revision.",
        printers.revision,
        name="version",
        exits=(Exit(0, "printed"),),
    ),
    Verb(
        "db",
        commands.archive_deleted_rows,
        "Move soft-deleted rows of [database]/connection (or of every cell) to the shadow "
        "tables, and delete the instance mappings, build requests and request specs of the "
        "instances archived. Resumable; safe to run twice at once.",
        archive_output.archived,
        options=(
            Opt(
                "--max_rows",
                metavar="N",
                help=f"rows to archive in all (default {archive.DEFAULT_MAX_ROWS}; a soft "
                "limit: an instance goes with all its rows); with --until-complete the "
                "batch size",
                parse=archive.parse_max_rows,
            ),
            Opt("--before", metavar="DATE", help=_BEFORE_HELP, parse=archive.parse_before),
            Opt(
                "--verbose",
                switch=True,
                printer_only=True,
                help="print how many rows were archived per table",
            ),
            Opt("--until-complete", switch=True, help="run until nothing is left to archive"),
            Opt("--purge", switch=True, help="purge the shadow tables once rows were archived"),
            Opt("--all-cells", switch=True, help="archive every mapped cell, cell0 included"),
        ),
        exits=(
            Exit(0, "nothing was archived"),
            Exit(
                EXIT_UNEXPECTED,
                "a cell's database could not be reached (the other cells are still archived; "
                "each failed cell is one line on stderr)",
                when=_failed,
            ),
            Exit(1, "rows were archived (run again while 1)", when=lambda run: run.result.archived),
            Exit(2, "invalid --max_rows", InvalidMaxCount, hint=_MAX_ROWS_HINT),
            Exit(3, "the API database cannot be reached", ApiDatabaseUnavailable),
            Exit(4, "invalid --before", InvalidValue, hint=_BEFORE_HINT),
        ),
        feedback=archive_output.archive_feedback,
    ),
    Verb(
        "db",
        commands.purge,
        "Delete archived rows from the shadow tables of [database]/connection (or every cell).",
        archive_output.purged,
        options=(
            Opt("--before", metavar="DATE", help=_BEFORE_HELP, parse=archive.parse_before),
            Opt("--all", switch=True, param="purge_all", help="purge every shadow row"),
            Opt("--verbose", switch=True, printer_only=True, help="print what was purged"),
            Opt("--all-cells", switch=True, help="purge every mapped cell, cell0 included"),
        ),
        exits=(
            Exit(0, "rows were purged"),
            Exit(1, "neither --before nor --all", Invalid, hint="Pass --before DATE or --all."),
            Exit(2, "invalid --before", InvalidValue, hint=_BEFORE_HINT),
            Exit(
                EXIT_UNEXPECTED,
                "a cell's database could not be reached (the other cells are still purged)",
                when=_failed,
            ),
            Exit(3, "nothing was purged", when=lambda run: not run.result.total),
            Exit(
                4,
                "with --all-cells: the API database cannot be reached",
                ApiDatabaseUnavailable,
            ),
        ),
        feedback=archive_output.purge_feedback,
    ),
    # -- cell_v2: cells ------------------------------------------------------------
    Verb(
        "cell_v2",
        commands.map_cell0,
        "Map cell0.",
        printers.cell0,
        options=(
            Opt(
                "--database_connection",
                metavar="URL",
                help="(default: [database]/connection with the database name suffixed _cell0)",
            ),
        ),
        exits=(
            Exit(0, "created or already mapped"),
            Exit(1, "cell0's database URL is missing", MissingURL, hint=_pass_option),
        ),
    ),
    Verb(
        "cell_v2",
        commands.create_cell,
        "Map a new cell. Warns (the exit code stays 0) when its database or queue cannot "
        "be reached, or another cell has its name.",
        printers.cell_created,
        options=(
            Opt("--name", help="cell name"),
            Opt("--database_connection", metavar="URL", help=_URL_HELP),
            Opt("--transport-url", metavar="URL", help=_MQ_HELP),
            Opt("--verbose", switch=True, printer_only=True, help="print the new cell's uuid"),
            Opt("--disabled", switch=True, help="create the cell disabled"),
        ),
        exits=(
            Exit(0, "created"),
            Exit(1, "a URL is missing or invalid", MissingURL, InvalidURL, hint=_pass_option),
            Exit(2, "another cell has this database or transport URL", DuplicateCellURL),
        ),
    ),
    Verb(
        "cell_v2",
        commands.list_cells,
        "List the cells.",
        printers.cells,
        options=(Opt("--verbose", switch=True, printer_only=True, help="show passwords"),),
        exits=(Exit(0),),
    ),
    Verb(
        "cell_v2",
        commands.update_cell,
        "Change a cell's properties; options not given keep their values. Warns (the exit "
        "code stays 0) when a new URL cannot be reached, or another cell has the new name.",
        printers.cell_updated,
        options=(
            Opt("--cell_uuid", required=True),
            Opt("--name"),
            Opt("--transport-url", metavar="URL"),
            Opt("--database_connection", metavar="URL"),
            Opt("--disable", switch=True, help="stop scheduling to this cell"),
            Opt("--enable", switch=True, help="schedule to this cell again"),
        ),
        exits=(
            Exit(0, "updated or already in that state"),
            Exit(1, "cell not found", CellMappingNotFound),
            Exit(2, "update failed (invalid URL)", InvalidURL),
            Exit(3, "URL used by another cell", DuplicateCellURL),
            Exit(
                4,
                "both --disable and --enable",
                ConflictingOptions,
                hint="Pass either --disable or --enable, not both.",
            ),
            Exit(5, "cell0 cannot be enabled or disabled", CellIsCell0),
        ),
    ),
    Verb(
        "cell_v2",
        commands.delete_cell,
        "Unmap a cell.",
        printers.cell_deleted,
        options=(
            Opt("--cell_uuid", required=True),
            Opt(
                "--force",
                switch=True,
                help="also delete its host mappings and the mappings of its deleted instances",
            ),
        ),
        exits=(
            Exit(0, "deleted"),
            Exit(1, "not found", CellMappingNotFound),
            Exit(
                2,
                "hosts mapped (use --force)",
                CellHasHosts,
                hint="Use --force to delete its host mappings with it.",
            ),
            Exit(3, "instances in the cell", CellHasInstances),
            Exit(
                4,
                "only mappings of deleted instances left (use --force)",
                CellHasOnlyDeletedInstances,
                hint="Use --force to delete them with the cell.",
            ),
        ),
    ),
    # -- cell_v2: hosts and instances --------------------------------------------------
    Verb(
        "cell_v2",
        commands.discover_hosts,
        "Map the compute hosts of the cells that are not mapped yet.",
        printers.discovery,
        options=(
            Opt("--cell_uuid", help="only this cell"),
            Opt("--verbose", switch=True, printer_only=True, help="list each newly mapped host"),
            Opt(
                "--strict",
                switch=True,
                printer_only=True,
                help="exit 1 unless a new host was mapped",
            ),
            Opt("--by-service", switch=True, help="find hosts by compute service"),
        ),
        exits=(
            Exit(0, "done"),
            Exit(
                3,
                "a host is already mapped to another cell (left there)",
                when=lambda run: bool(run.result.conflicts),
            ),
            Exit(
                EXIT_UNEXPECTED,
                "a cell could not be read (the other cells are still discovered; each such "
                "cell is one line on stderr)",
                when=lambda run: bool(run.result.failed_cells),
            ),
            Exit(
                1,
                "with --strict: no new host",
                when=lambda run: run.args.strict and not run.result.new_hosts,
            ),
        ),
        reprinted_log=_DISCOVERY_LOG,
    ),
    Verb(
        "cell_v2",
        commands.map_instances,
        "Create the missing instance mappings of a cell (resumable).",
        printers.instances_mapped,
        options=(
            Opt("--cell_uuid", required=True),
            Opt(
                "--max-count",
                metavar="N",
                help="examine at most N instances in this run",
                parse=commands.parse_max_count,
            ),
            Opt("--reset", switch=True, help="rescan the cell from the start"),
        ),
        exits=(
            Exit(0, "all mapped"),
            Exit(1, "more remain (run again)", when=lambda run: not run.result.complete),
            Exit(2, "cell not found", CellMappingNotFound),
            Exit(127, "invalid --max-count", InvalidMaxCount),
        ),
        feedback=printers.mapping_progress,
    ),
    Verb(
        "cell_v2",
        commands.map_cell_and_hosts,
        "Map the cell of [database]/connection (or reuse it) and its hosts.",
        printers.cell_and_hosts,
        options=(
            Opt("--transport-url", metavar="URL", help=_MQ_HELP),
            Opt("--name", help="name of the cell, if it is created"),
            Opt(
                "--verbose",
                switch=True,
                printer_only=True,
                help="list new hosts and the cell uuid",
            ),
        ),
        exits=(
            Exit(0, "done"),
            Exit(1, "a URL is missing or invalid", MissingURL, InvalidURL, hint=_pass_option),
            Exit(
                EXIT_UNEXPECTED,
                "the cell's database cannot be read",
                when=lambda run: bool(run.result.discovery.failed_cells),
            ),
        ),
        reprinted_log=_DISCOVERY_LOG,
    ),
    Verb(
        "cell_v2",
        commands.simple_cell_setup,
        "Set up cell0 and the cell of [database]/connection with its hosts and instances. "
        "cell0's database is migrated before cell0 is mapped; if that fails for another "
        "reason than a missing database, it says so in one line and carries on.",
        printers.setup,
        options=(Opt("--transport-url", metavar="URL", help=_MQ_HELP),),
        exits=(
            Exit(0, "done or already done (cell0's schema included, unless stderr says not)"),
            Exit(
                1,
                "a URL is missing or invalid, or no compute hosts",
                MissingURL,
                InvalidURL,
                NoComputeHosts,
                hint=_pass_option,
            ),
            Exit(
                3,
                "cell0's database does not exist (the message names it: create it; nothing "
                "was mapped)",
                CellDatabaseMissing,
                hint=_create_database,
            ),
            Exit(
                4, "[database]/connection cannot be reached", DatabaseUnavailable, CellUnavailable
            ),
        ),
        reprinted_log=_DISCOVERY_LOG,
    ),
    Verb(
        "cell_v2",
        commands.verify_instance,
        "Check an instance's mapping.",
        printers.verification,
        options=(
            Opt("--uuid", required=True, help="instance uuid", param="instance_uuid"),
            Opt("--quiet", switch=True, printer_only=True, help="print nothing, exit code only"),
        ),
        exits=(
            Exit(0, "mapped and in its cell"),
            Exit(1, "no mapping", when=_in_state(InstanceState.NOT_MAPPED)),
            Exit(2, "no cell yet (building)", when=_in_state(InstanceState.BUILDING)),
            Exit(3, "deleted, mapping left", when=_in_state(InstanceState.SOFT_DELETED)),
            Exit(
                4,
                "gone from its cell (archived, or missing)",
                when=_in_state(InstanceState.ARCHIVED, InstanceState.MISSING),
            ),
            Exit(5, "cell unreachable", when=_in_state(InstanceState.CELL_UNREACHABLE)),
        ),
    ),
    Verb(
        "cell_v2",
        commands.list_hosts,
        "List the host mappings, sorted by host name.",
        printers.hosts,
        options=(Opt("--cell_uuid", help="only this cell"),),
        exits=(Exit(0), Exit(1, "cell not found", CellMappingNotFound)),
    ),
    Verb(
        "cell_v2",
        commands.delete_host,
        "Unmap a host from its cell.",
        printers.host_deleted,
        options=(Opt("--cell_uuid", required=True), Opt("--host", required=True)),
        exits=(
            Exit(0, "deleted"),
            Exit(1, "cell not found", CellMappingNotFound),
            Exit(2, "host not found", HostMappingNotFound),
            Exit(3, "host mapped to another cell", HostInOtherCell),
            Exit(4, "host has instances", HostHasInstances),
        ),
    ),
    # -- cell_v2: status --------------------------------------------------------------
    Verb(
        "cell_v2",
        commands.status,
        "Probe every cell's database and queue, and compare each database's schema with "
        "the cell schema head (ok / no schema / behind / unknown revision).",
        printers.statuses,
        options=(
            Opt(
                "--verbose",
                switch=True,
                param="counts",
                help="show (masked) URLs, probe notes and per-cell counts",
            ),
        ),
        exits=(
            Exit(0, "every cell reachable and at the schema head"),
            Exit(1, "some unreachable", when=lambda run: not all(s.reachable for s in run.result)),
            Exit(
                2,
                "a reachable cell's schema is not at the head (db sync migrates it)",
                when=lambda run: any(s.schema_off_head for s in run.result),
            ),
        ),
    ),
)
