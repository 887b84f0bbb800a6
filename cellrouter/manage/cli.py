"""``cellrouter-manage``: a thin argparse layer over :mod:`cellrouter.manage.commands`.

Parses, calls one command function, prints, and turns errors into exit codes.
Exit codes shared by every command: 0 success; 2 bad arguments (argparse, and
arguments that are not valid UTF-8); 255 an unexpected error (one line on
stderr, ``--debug`` adds the traceback) or a cell that cannot be reached;
a cellrouter error a command has no specific code for exits 1, and so does bad
local input: a config file or directory that cannot be used, an API database
that cannot be reached. Command-specific codes are listed in each command's
``--help``. Bad local input never exits 255.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.metadata
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from oslo_config import cfg

from cellrouter import conf, exception
from cellrouter.across.probes import Probe
from cellrouter.manage import commands as command
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.url import mask_url

__all__ = ["build_parser", "main"]

EXIT_UNEXPECTED = 255
#: bad command-line arguments (argparse's own code)
EXIT_USAGE = 2
#: a cellrouter error: also a config file that cannot be used, an unreachable API database
EXIT_ERROR = 1

#: the exit codes every command shares, as each command's --help repeats them
COMMON_CODES = (
    "exit codes common to every command: 1 a cellrouter error (a config file or "
    "directory that cannot be used, the API database unreachable, ...); 2 bad arguments "
    "(not valid UTF-8 included); 255 unexpected error"
)

Handler = Callable[[argparse.Namespace], int]
#: exception class -> exit code, looked up along the raised error's MRO
ErrorCodes = dict[type[BaseException], int]


def out(line: str = "") -> None:
    print(line, file=sys.stdout)


def err(line: str) -> None:
    print(line, file=sys.stderr)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table (list commands)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    return "\n".join([rule, line(headers), rule, *(line(r) for r in cells), rule])


def add_command(
    group: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    handler: Handler,
    help: str,
    errors: ErrorCodes | None = None,
    codes: str = "",
) -> argparse.ArgumentParser:
    """Declare ``name`` under a category; ``codes`` documents its exit codes in --help."""
    parser = group.add_parser(
        name,
        help=help,
        description=help,
        epilog=(f"exit codes: {codes}\n" if codes else "") + COMMON_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=handler, errors=errors or {})
    return parser


# -- api_db / db ---------------------------------------------------------------


def _print_sync(result: command.SyncResult) -> None:
    if result.before == result.after:
        out(f"{result.target}: already at {result.after or 'base'}")
    else:
        out(f"{result.target}: {result.before or 'base'} -> {result.after or 'base'}")


def _api_db_sync(args: argparse.Namespace) -> int:
    _print_sync(command.api_db_sync(args.version))
    return 0


def _api_db_version(args: argparse.Namespace) -> int:
    out(command.api_db_version() or "base")
    return 0


def _db_sync(args: argparse.Namespace) -> int:
    """``--all-cells``: every cell is tried; each one that fails is one stderr line."""
    failed: list[exception.CellUnavailable] = []

    def report(exc: exception.CellUnavailable) -> None:
        failed.append(exc)
        err(_one_line(exc))

    done = command.db_sync(
        args.version, all_cells=args.all_cells, progress=_print_sync, failed=report
    )
    if args.all_cells:
        out(f"{len(done)} cell(s) migrated, {len(failed)} failed.")
    return EXIT_UNEXPECTED if failed else 0


def _db_version(args: argparse.Namespace) -> int:
    out(command.db_version() or "base")
    return 0


def _add_db_commands(categories: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    api_db = categories.add_parser("api_db", help="API database schema").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    sync = add_command(api_db, "sync", _api_db_sync, "Migrate the API database.", codes="0 done")
    sync.add_argument("version", nargs="?", help="target revision (default: head)")
    add_command(api_db, "version", _api_db_version, "Print the API database's revision.")

    db = categories.add_parser("db", help="cell database schema").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    sync = add_command(
        db,
        "sync",
        _db_sync,
        "Migrate [database]/connection (or every cell).",
        codes="0 done; 255 a cell's database could not be reached (with --all-cells the "
        "other cells are still migrated; each failed cell is one line on stderr)",
    )
    sync.add_argument("version", nargs="?", help="target revision (default: head)")
    sync.add_argument(
        "--all-cells",
        action="store_true",
        help="migrate every mapped cell, cell0 included, one after another",
    )
    add_command(db, "version", _db_version, "Print [database]/connection's revision.")


# -- cell_v2 -------------------------------------------------------------------


def _option(parser: argparse.ArgumentParser, name: str, **kw: Any) -> None:
    """Add ``name`` and its other spelling (``_`` <-> ``-``): Nova mixes both styles."""
    stem = name[2:]
    other = stem.replace("_", "-") if "_" in stem else stem.replace("-", "_")
    flags = [name] if other == stem else [name, f"--{other}"]
    parser.add_argument(*flags, dest=stem.replace("-", "_"), **kw)


def _shown(url: str, verbose: bool = False) -> str:
    """``url`` as printed: masked unless the operator asked for secrets."""
    return url if verbose else mask_url(url)


def _map_cell0(args: argparse.Namespace) -> int:
    result = command.map_cell0(args.database_connection)
    if result.created:
        out(f"Cell0 mapped to database {mask_url(result.cell.database_connection)}.")
    else:
        out("Cell0 is already setup.")
    return 0


def _create_cell(args: argparse.Namespace) -> int:
    cell = command.create_cell(
        args.name, args.database_connection, args.transport_url, disabled=args.disabled
    )
    if args.verbose:
        out(cell.uuid)
    return 0


def _list_cells(args: argparse.Namespace) -> int:
    rows = [
        (
            cell.name,
            cell.uuid,
            _shown(cell.transport_url, args.verbose),
            _shown(cell.database_connection, args.verbose),
            cell.disabled,
        )
        for cell in command.list_cells()
    ]
    out(table(["Name", "UUID", "Transport URL", "Database Connection", "Disabled"], rows))
    return 0


def _update_cell(args: argparse.Namespace) -> int:
    result = command.update_cell(
        args.cell_uuid,
        name=args.name,
        transport_url=args.transport_url,
        database_connection=args.database_connection,
        disable=args.disable,
        enable=args.enable,
    )
    changed = [
        ("enabled" if not result.cell.disabled else "disabled") if field == "disabled" else field
        for field in result.changed
    ]
    parts = [f"updated: {', '.join(changed)}"] if changed else []
    if result.already:
        parts.append(f"already {result.already}")
    out(f"Cell {result.cell.identity}: {'; '.join(parts) or 'nothing to update'}.")
    return 0


def _delete_cell(args: argparse.Namespace) -> int:
    result = command.delete_cell(args.cell_uuid, force=args.force)
    removed = ""
    if result.host_mappings or result.instance_mappings:
        removed = (
            f" with {result.host_mappings} host mapping(s) and "
            f"{result.instance_mappings} instance mapping(s)"
        )
    out(f"Cell {result.cell.identity} deleted{removed}.")
    return 0


@contextlib.contextmanager
def _reported_here(args: argparse.Namespace) -> Iterator[None]:
    """Discovery logs each cell it could not read and each host conflict; the
    discovery commands print both themselves (:func:`_report_discovery`), so
    its log lines would say everything twice. Shown with ``--debug``."""
    logger = logging.getLogger("cellrouter.manage.discovery")
    level = logger.level
    if not args.debug:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


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
        err(_one_line(line))


def _discover_hosts(args: argparse.Namespace) -> int:
    with _reported_here(args):
        result = command.discover_hosts(args.cell_uuid, by_service=args.by_service)
    _report_discovery(result, args.verbose)
    out(
        f"{len(result.new_hosts)} new host(s) mapped; {result.cells_scanned} cell(s) "
        f"scanned, {len(result.failed_cells)} failed."
    )
    if result.conflicts:
        return 3
    if result.failed_cells:
        return EXIT_UNEXPECTED
    if args.strict and not result.new_hosts:
        return 1
    return 0


def _progress(examined: int, mapped: int) -> None:
    sys.stderr.write(f"\rexamined {examined} instance(s), mapped {mapped}")
    sys.stderr.flush()


def _map_instances(args: argparse.Namespace) -> int:
    max_count = command.parse_max_count(args.max_count)
    progress = _progress if sys.stderr.isatty() else None
    result = command.map_instances(args.cell_uuid, max_count, reset=args.reset, progress=progress)
    if progress is not None and result.examined:
        err("")
    if result.complete:
        out(f"All instances of cell {args.cell_uuid} are mapped ({result.mapped} new).")
        return 0
    out(f"{result.mapped} instance(s) mapped; more remain: run the command again.")
    return 1


def _map_cell_and_hosts(args: argparse.Namespace) -> int:
    with _reported_here(args):
        result = command.map_cell_and_hosts(args.transport_url, args.name)
    _report_discovery(result.discovery, args.verbose)
    state = "created" if result.created else "already mapped"
    out(f"Cell {result.cell.identity} {state}; {len(result.discovery.new_hosts)} new host(s).")
    if args.verbose:
        out(result.cell.uuid)
    return EXIT_UNEXPECTED if result.discovery.failed_cells else 0


def _simple_cell_setup(args: argparse.Namespace) -> int:
    with _reported_here(args):
        result = command.simple_cell_setup(args.transport_url)
    _report_discovery(result.cell.discovery, verbose=False)
    out(
        f"Done: cell0 {'mapped' if result.cell0.created else 'already mapped'} "
        f"(schema {result.cell0_schema.after or 'base'}), cell {result.cell.cell.identity} "
        f"{'created' if result.cell.created else 'already mapped'}, "
        f"{len(result.cell.discovery.new_hosts)} new host(s), "
        f"{result.instances.mapped} new instance mapping(s)."
    )
    return 0


_VERIFY: dict[command.InstanceState, tuple[int, str]] = {
    command.InstanceState.MAPPED: (0, "Instance {uuid} is in cell {cell}."),
    command.InstanceState.NOT_MAPPED: (1, "Instance {uuid} is not mapped."),
    command.InstanceState.BUILDING: (
        2,
        "Instance {uuid} is not mapped to a cell yet: it is probably still building.",
    ),
    command.InstanceState.SOFT_DELETED: (
        3,
        "Instance {uuid} has been deleted in cell {cell}; its mapping remains.",
    ),
    command.InstanceState.ARCHIVED: (
        4,
        "Instance {uuid} is mapped to cell {cell} but is no longer there (archived?).",
    ),
    command.InstanceState.CELL_UNREACHABLE: (
        5,
        "Instance {uuid} is mapped to cell {cell}, which is unreachable: {reason}",
    ),
}


def _verify_instance(args: argparse.Namespace) -> int:
    result = command.verify_instance(args.uuid)
    code, message = _VERIFY[result.state]
    if not args.quiet:
        cell = result.cell.identity if result.cell is not None else None
        out(mask_url(message.format(uuid=result.uuid, cell=cell, reason=result.reason)))
    return code


def _list_hosts(args: argparse.Namespace) -> int:
    rows = [
        (m.cell_mapping.name, m.cell_mapping.uuid, m.host)
        for m in command.list_hosts(args.cell_uuid)
    ]
    out(table(["Cell Name", "Cell UUID", "Hostname"], rows))
    return 0


def _delete_host(args: argparse.Namespace) -> int:
    mapping = command.delete_host(args.cell_uuid, args.host)
    out(f"Host {mapping.host} deleted from cell {mapping.cell_mapping.identity}.")
    return 0


def _probe_text(probe: Probe) -> str:
    if probe.state == "ok" and probe.latency_ms:
        return f"ok ({probe.latency_ms:.1f} ms)"
    return {"unreachable": "UNREACHABLE"}.get(probe.state, probe.state)


def _status(args: argparse.Namespace) -> int:
    statuses = command.status()
    headers = ["Name", "UUID", "Disabled", "Database", "Queue", "Hosts", "Instances"]
    if args.verbose:
        headers += ["Database Connection", "Transport URL"]
    rows = []
    for st in statuses:
        row = [
            st.cell.name,
            st.cell.uuid,
            st.cell.disabled,
            _probe_text(st.probe.database),
            _probe_text(st.probe.queue),
            st.hosts,
            st.instances,
        ]
        if args.verbose:
            row += [mask_url(st.cell.database_connection), mask_url(st.cell.transport_url)]
        rows.append(row)
    out(table(headers, rows))
    down = [st for st in statuses if not st.reachable]
    for st in statuses:
        for what, probe in (("database", st.probe.database), ("queue", st.probe.queue)):
            if probe.error and (probe.failed or args.verbose):
                out(mask_url(f"{st.cell.identity}: {what}: {probe.error}"))
    if down:
        out(f"{len(down)} of {len(statuses)} cell(s) unreachable.")
        return 1
    out(f"All {len(statuses)} cell(s) reachable.")
    return 0


def _add_cell_v2_commands(categories: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = categories.add_parser(
        "cell_v2", help="cells v2: cell, host and instance mappings"
    ).add_subparsers(dest="command", required=True, metavar="COMMAND")
    url_help = "(default: [database]/connection)"
    mq_help = "(default: [DEFAULT]/transport_url)"

    p = add_command(
        group, "map_cell0", _map_cell0, "Map cell0.", codes="0 created or already mapped"
    )
    _option(
        p,
        "--database_connection",
        metavar="URL",
        help="(default: [database]/connection with the database name suffixed _cell0)",
    )

    p = add_command(
        group,
        "create_cell",
        _create_cell,
        "Map a new cell.",
        errors={exception.MissingURL: 1, exception.InvalidURL: 1, exception.DuplicateCellURL: 2},
        codes="0 created; 1 a URL is missing or invalid; 2 another cell has this database "
        "or transport URL",
    )
    _option(p, "--name", help="cell name")
    _option(p, "--database_connection", metavar="URL", help=url_help)
    _option(p, "--transport-url", metavar="URL", help=mq_help)
    _option(p, "--verbose", action="store_true", help="print the new cell's uuid")
    _option(p, "--disabled", action="store_true", help="create the cell disabled")

    p = add_command(group, "list_cells", _list_cells, "List the cells.", codes="0")
    _option(p, "--verbose", action="store_true", help="show passwords")

    p = add_command(
        group,
        "update_cell",
        _update_cell,
        "Change a cell's properties; options not given keep their values.",
        errors={
            exception.CellMappingNotFound: 1,
            exception.InvalidURL: 2,
            exception.DuplicateCellURL: 3,
            exception.ConflictingOptions: 4,
            exception.CellIsCell0: 5,
        },
        codes="0 updated or already in that state; 1 cell not found; 2 update failed "
        "(invalid URL); 3 URL used by another cell; 4 both --disable and --enable; "
        "5 cell0 cannot be enabled or disabled",
    )
    _option(p, "--cell_uuid", required=True)
    _option(p, "--name")
    _option(p, "--transport-url", metavar="URL")
    _option(p, "--database_connection", metavar="URL")
    _option(p, "--disable", action="store_true", help="stop scheduling to this cell")
    _option(p, "--enable", action="store_true", help="schedule to this cell again")

    p = add_command(
        group,
        "delete_cell",
        _delete_cell,
        "Unmap a cell.",
        errors={
            exception.CellMappingNotFound: 1,
            exception.CellHasHosts: 2,
            exception.CellHasInstances: 3,
            exception.CellHasOnlyDeletedInstances: 4,
        },
        codes="0 deleted; 1 not found; 2 hosts mapped (use --force); 3 instances in the "
        "cell; 4 only mappings of deleted instances left (use --force)",
    )
    _option(p, "--cell_uuid", required=True)
    _option(
        p,
        "--force",
        action="store_true",
        help="also delete its host mappings and the mappings of its deleted instances",
    )

    p = add_command(
        group,
        "discover_hosts",
        _discover_hosts,
        "Map the compute hosts of the cells that are not mapped yet.",
        codes="0 done; 1 with --strict: no new host; 255 a cell could not be read (the "
        "other cells are still discovered; each such cell is one line on stderr); "
        "3 a host is already mapped to another cell (left there)",
    )
    _option(p, "--cell_uuid", help="only this cell")
    _option(p, "--verbose", action="store_true", help="list each newly mapped host")
    _option(p, "--strict", action="store_true", help="exit 1 unless a new host was mapped")
    _option(p, "--by-service", action="store_true", help="find hosts by compute service")

    p = add_command(
        group,
        "map_instances",
        _map_instances,
        "Create the missing instance mappings of a cell (resumable).",
        errors={exception.CellMappingNotFound: 2, exception.InvalidMaxCount: 127},
        codes="0 all mapped; 1 more remain (run again); 2 cell not found; 127 invalid --max-count",
    )
    _option(p, "--cell_uuid", required=True)
    _option(p, "--max-count", metavar="N", help="examine at most N instances in this run")
    _option(p, "--reset", action="store_true", help="rescan the cell from the start")

    p = add_command(
        group,
        "map_cell_and_hosts",
        _map_cell_and_hosts,
        "Map the cell of [database]/connection (or reuse it) and its hosts.",
        codes="0 done; 1 a URL is missing or invalid; 255 the cell's database cannot be read",
    )
    _option(p, "--transport-url", metavar="URL", help=mq_help)
    _option(p, "--name", help="name of the cell, if it is created")
    _option(p, "--verbose", action="store_true", help="list new hosts and the cell uuid")

    p = add_command(
        group,
        "simple_cell_setup",
        _simple_cell_setup,
        "Set up cell0 and the cell of [database]/connection with its hosts and instances.",
        codes="0 done or already done; 1 a URL is missing or invalid, or no compute hosts",
    )
    _option(p, "--transport-url", metavar="URL", help=mq_help)

    p = add_command(
        group,
        "verify_instance",
        _verify_instance,
        "Check an instance's mapping.",
        codes="0 mapped and in its cell; 1 no mapping; 2 no cell yet (building); "
        "3 deleted, mapping left; 4 gone from its cell (archived); 5 cell unreachable",
    )
    _option(p, "--uuid", required=True, help="instance uuid")
    _option(p, "--quiet", action="store_true", help="print nothing, exit code only")

    p = add_command(
        group,
        "list_hosts",
        _list_hosts,
        "List the host mappings.",
        errors={exception.CellMappingNotFound: 1},
        codes="0; 1 cell not found",
    )
    _option(p, "--cell_uuid", help="only this cell")

    p = add_command(
        group,
        "delete_host",
        _delete_host,
        "Unmap a host from its cell.",
        errors={
            exception.CellMappingNotFound: 1,
            exception.HostMappingNotFound: 2,
            exception.HostInOtherCell: 3,
            exception.HostHasInstances: 4,
        },
        codes="0 deleted; 1 cell not found; 2 host not found; 3 host mapped to another "
        "cell; 4 host has instances",
    )
    _option(p, "--cell_uuid", required=True)
    _option(p, "--host", required=True)

    p = add_command(
        group,
        "status",
        _status,
        "Probe every cell's database and queue.",
        codes="0 every cell reachable; 1 some unreachable",
    )
    _option(p, "--verbose", action="store_true", help="show (masked) URLs and probe notes")


#: Functions that add a category's commands; other modules append theirs.
CATEGORIES: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    _add_db_commands,
    _add_cell_v2_commands,
]


def _version() -> str:
    try:
        return importlib.metadata.version("cellrouter")
    except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellrouter-manage",
        description="Operate a cellrouter deployment (nova-manage compatible).",
        epilog="exit codes: 0 success; 1 a cellrouter error (the message says what; a "
        "config file or directory that cannot be used and an unreachable API database "
        "included); 2 bad arguments (arguments that are not valid UTF-8 included); 255 "
        "unexpected error (a cell that cannot be reached included). See each command's "
        "--help for its own codes.",
    )
    parser.add_argument(
        "--config-file", action="append", default=[], metavar="PATH", help="(repeatable)"
    )
    parser.add_argument("--config-dir", action="append", default=[], metavar="DIR")
    parser.add_argument("--debug", action="store_true", help="log and show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    categories = parser.add_subparsers(dest="category", required=True, metavar="CATEGORY")
    for add in CATEGORIES:
        add(categories)
    return parser


def _print_traceback(exc: BaseException) -> None:
    """``--debug``: the traceback, masked like every other line we print."""
    err(mask_url("".join(traceback.format_exception(exc))).rstrip())


def _one_line(text: object) -> str:
    """``text`` masked, as one line (its first)."""
    lines = mask_url(str(text)).strip().splitlines()
    return lines[0] if lines else ""


def _exit_code(exc: BaseException, errors: ErrorCodes) -> int:
    """The command's code for ``exc``; else 255 for an unreachable cell (not the
    operator's input: no command's table gives it a meaning), else 1 (an
    unreachable API database included: it is this host's configuration)."""
    for klass in type(exc).__mro__:
        if klass in errors:
            return errors[klass]
    if isinstance(exc, exception.CellUnavailable):
        return EXIT_UNEXPECTED
    return EXIT_ERROR


def _undecodable_argument(argv: Sequence[str]) -> str | None:
    """Why ``argv`` cannot be used, if an argument is not valid UTF-8, else None.

    Python decodes such bytes with surrogateescape; printing the argument back
    (or storing it) would fail much later. The message names the argument's
    position, never its bytes.
    """
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            previous = argv[position - 2] if position > 1 else ""
            of = f" (the value of {previous})" if previous.startswith("-") else ""
            return f"argument {position}{of} is not valid UTF-8"
    return None


def _unusable_file(path: str) -> str | None:
    """Why the config file ``path`` cannot be used, or None."""
    if not os.path.lexists(path):
        return "no such file"
    if os.path.isdir(path):
        return "is a directory, not a file"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"is not valid UTF-8 (line {line})"
    return None


def _unusable_config(files: Sequence[str], dirs: Sequence[str]) -> str | None:
    """Why ``--config-file``/``--config-dir`` cannot be loaded, or None.

    Checked before oslo.config reads them: it reports a directory or an
    unreadable or non-UTF-8 file with a bare OSError/UnicodeDecodeError, and
    silently skips a ``--config-dir`` that is a file.
    """
    for path in files:
        problem = _unusable_file(path)
        if problem:
            return f"Cannot use --config-file {path}: {problem}."
    for path in dirs:
        if not os.path.isdir(path):
            problem = "not a directory" if os.path.lexists(path) else "no such directory"
            return f"Cannot use --config-dir {path}: {problem}."
        if not os.access(path, os.R_OK | os.X_OK):
            return f"Cannot use --config-dir {path}: cannot be read."
        for file in sorted(glob.glob(os.path.join(path, "*.conf"))):  # what oslo.config reads
            problem = _unusable_file(file)
            if problem:
                return f"Cannot use --config-dir {path}: {os.path.basename(file)} {problem}."
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    undecodable = _undecodable_argument(argv)
    if undecodable:
        err(f"{parser.prog}: error: {undecodable}")
        return EXIT_USAGE
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    oslo_args: list[str] = []
    for path in args.config_file:
        oslo_args += ["--config-file", path]
    for path in args.config_dir:
        oslo_args += ["--config-dir", path]
    unusable = _unusable_config(args.config_file, args.config_dir)
    if unusable:
        err(unusable)
        return EXIT_ERROR
    try:
        try:
            conf.setup(oslo_args)
        except (OSError, UnicodeDecodeError) as exc:  # a default config file, or a race
            reason = f"cannot read a config file: {exc}"
            raise exception.ConfigurationError(reason=reason) from exc
        return int(args.func(args))
    except (exception.CellRouterError, cfg.Error) as exc:
        if args.debug:
            _print_traceback(exc)
        err(_one_line(exc) or repr(exc))
        return _exit_code(exc, args.errors)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            _print_traceback(exc)
        detail = mask_url(str(exc)).strip().splitlines()
        err(f"error: {type(exc).__name__}: {detail[0] if detail else ''}".rstrip(": "))
        return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
