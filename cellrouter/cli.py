"""``cellrouter-manage``: a thin argparse layer over :mod:`cellrouter.command`.

Parses, calls one command function, prints, and turns errors into exit codes.
Exit codes shared by every command: 0 success; 2 bad arguments (argparse);
255 an unexpected error (one line on stderr, ``--debug`` adds the traceback);
a cellrouter error a command has no specific code for exits 1. Command-specific
codes are listed in each command's ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg

from cellrouter import command, conf, exception
from cellrouter.url import mask_url

__all__ = ["build_parser", "main"]

EXIT_UNEXPECTED = 255

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
        epilog=f"exit codes: {codes}" if codes else None,
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
    for result in command.db_sync(args.version, all_cells=args.all_cells):
        _print_sync(result)
    return 0


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
        db, "sync", _db_sync, "Migrate [database]/connection (or every cell).", codes="0 done"
    )
    sync.add_argument("version", nargs="?", help="target revision (default: head)")
    sync.add_argument(
        "--all-cells",
        action="store_true",
        help="migrate every mapped cell, cell0 included, one after another",
    )
    add_command(db, "version", _db_version, "Print [database]/connection's revision.")


#: Functions that add a category's commands; other modules append theirs.
CATEGORIES: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    _add_db_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellrouter-manage",
        description="Operate a cellrouter deployment (nova-manage compatible).",
        epilog="exit codes: 0 success; 1 a cellrouter error; 2 bad arguments; "
        "255 unexpected error. See each command's --help for its own codes.",
    )
    parser.add_argument(
        "--config-file", action="append", default=[], metavar="PATH", help="(repeatable)"
    )
    parser.add_argument("--config-dir", action="append", default=[], metavar="DIR")
    parser.add_argument("--debug", action="store_true", help="log and show tracebacks")
    categories = parser.add_subparsers(dest="category", required=True, metavar="CATEGORY")
    for add in CATEGORIES:
        add(categories)
    return parser


def _exit_code(exc: BaseException, errors: ErrorCodes) -> int:
    for klass in type(exc).__mro__:
        if klass in errors:
            return errors[klass]
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
    try:
        conf.setup(oslo_args)
        return int(args.func(args))
    except (exception.CellRouterError, cfg.Error) as exc:
        if args.debug:
            traceback.print_exc()
        err(mask_url(str(exc).strip()).splitlines()[0] if str(exc).strip() else repr(exc))
        return _exit_code(exc, args.errors)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            traceback.print_exc()
        detail = mask_url(str(exc)).strip().splitlines()
        err(f"error: {type(exc).__name__}: {detail[0] if detail else ''}".rstrip(": "))
        return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
