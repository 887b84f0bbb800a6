"""``cellrouter-manage``: argparse generated from the declared verbs, and ``main``.

The parser, each command's ``--help`` (exit codes included) and the mapping
of errors to exit codes all come from :data:`cellrouter.manage.catalog.VERBS`
(see :mod:`cellrouter.manage.verbs`), as alembic's ``CommandLine`` builds its
parser from its command functions. ``main`` parses, calls one command
function, has its printer print, and turns errors into exit codes.

Exit codes shared by every command: 0 success; 2 bad arguments (argparse, and
arguments that are not valid UTF-8); 255 an unexpected error (one line on
stderr, ``--debug`` adds the traceback) or a cell that cannot be reached;
a cellrouter error a command has no specific code for exits 1, and so does bad
local input: a config file or directory that cannot be used, an API database
that cannot be reached. Command-specific codes are listed in each command's
``--help``. Bad local input never exits 255. A usage error is reported with the
usage of the category or command it was found in.

oslo.log's options (``--log-file``, ``--debug``, ...) go before the category,
as with nova-manage (see :mod:`cellrouter.manage.cli_logging`).
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
from collections.abc import Iterator, Sequence
from typing import Any

from oslo_config import cfg

from cellrouter import conf, exception
from cellrouter.manage import catalog, cli_logging
from cellrouter.manage.printers import err, one_line
from cellrouter.manage.verbs import (
    COMMON_EXITS,
    EXIT_ERROR,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    Opt,
    Run,
    Verb,
    describe,
)
from cellrouter.url import mask_url

__all__ = ["build_parser", "main"]

#: the verbs ``main`` offers (a module global, so a test can swap one in)
VERBS: Sequence[Verb] = catalog.VERBS


class _VerbParser(argparse.ArgumentParser):
    """The parser of one category or verb.

    An argument it does not know is its own error, shown with its own usage
    (argparse would pass it up to the top-level parser, whose usage says
    nothing about this category's or verb's options), exit code 2 like
    nova-manage's usage errors; one of ``cellrouter-manage``'s own options
    (``global_options``) is pointed before the category. An abbreviation that
    matches both spellings of one option is not ambiguous.
    """

    def __init__(self, *args: Any, global_options: frozenset[str] = frozenset(), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.global_options = global_options

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            message = f"unrecognized arguments: {' '.join(extras)}"
            misplaced = [arg for arg in extras if arg.split("=", 1)[0] in self.global_options]
            if misplaced:
                program = self.prog.split()[0]
                message += f" ({', '.join(misplaced)}: {program}'s own options go before CATEGORY)"
            self.error(message)
        return parsed, extras

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        # argparse's (private) prefix lookup: it calls "--all" ambiguous between
        # --all-cells and --all_cells, one action; each tuple starts with the action
        matches: dict[int, Any] = {}
        for match in super()._get_option_tuples(option_string):
            matches.setdefault(id(match[0]), match)
        return list(matches.values())


def _add_option(parser: argparse.ArgumentParser, opt: Opt) -> None:
    kw: dict[str, Any] = {"help": opt.help}
    if opt.switch:
        kw["action"] = "store_true"
    else:
        kw["metavar"] = opt.metavar
    if opt.positional:
        kw["nargs"] = None if opt.required else "?"
        parser.add_argument(opt.name, **kw)
    else:
        parser.add_argument(*opt.flags, dest=opt.dest, required=opt.required, **kw)


def _register(
    group: argparse._SubParsersAction[_VerbParser], verb: Verb, global_options: frozenset[str]
) -> None:
    """Add ``verb`` under its category: options, help and exit codes from its declaration."""
    parser = group.add_parser(
        verb.name,
        global_options=global_options,
        help=verb.help,
        description=verb.help,
        epilog=f"exit codes: {describe(verb.exits)}\n"
        f"exit codes common to every command: {describe(COMMON_EXITS)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for opt in verb.options:
        _add_option(parser, opt)
    parser.set_defaults(verb=verb)


def _version() -> str:
    try:
        return importlib.metadata.version("cellrouter")
    except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
        return "unknown"


def build_parser(verbs: Sequence[Verb] | None = None) -> argparse.ArgumentParser:
    """The ``cellrouter-manage`` parser: one sub-parser per category, one per verb."""
    verbs = VERBS if verbs is None else verbs
    parser = argparse.ArgumentParser(
        prog="cellrouter-manage",
        description="Operate a cellrouter deployment (nova-manage compatible).",
        epilog=f"exit codes: 0 success; {describe(COMMON_EXITS)}. The message says what "
        "went wrong. See each command's --help for its own codes.",
    )
    actions = [
        parser.add_argument(
            "--config-file", action="append", default=[], metavar="PATH", help="(repeatable)"
        ),
        parser.add_argument("--config-dir", action="append", default=[], metavar="DIR"),
        parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}"),
        *cli_logging.add_arguments(parser),  # --debug among them: DEBUG logs and tracebacks
    ]
    global_options = frozenset(flag for action in actions for flag in action.option_strings)
    categories = parser.add_subparsers(
        dest="category", required=True, metavar="CATEGORY", parser_class=_VerbParser
    )
    unknown = sorted({verb.category for verb in verbs} - set(catalog.CATEGORIES))
    if unknown:
        raise ValueError(f"verbs in undeclared categories: {', '.join(unknown)}")
    for category, help in catalog.CATEGORIES.items():
        category_parser = categories.add_parser(category, help=help, global_options=global_options)
        group = category_parser.add_subparsers(
            dest="command", required=True, metavar="COMMAND", parser_class=_VerbParser
        )
        for verb in verbs:
            if verb.category == category:
                _register(group, verb, global_options)
    return parser


@contextlib.contextmanager
def _reprinted(logger_name: str | None, debug: bool) -> Iterator[None]:
    """Silence ``logger_name`` (unless ``--debug``): the printer says what it logs,
    so its lines would say everything twice."""
    if logger_name is None or debug:
        yield
        return
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _dispatch(verb: Verb, args: argparse.Namespace, debug: bool) -> int:
    """Call ``verb``'s command, print its result, return the code its exit table gives."""
    run: Run[Any] = Run(args)
    kwargs = verb.arguments(args)
    if verb.feedback is not None:
        kwargs.update(verb.feedback(run))
    with _reprinted(verb.reprinted_log, debug):
        run.result = verb.command(**kwargs)
    verb.printer(run)
    return verb.outcome(run)


def _exit_code(exc: BaseException, verb: Verb) -> int:
    """``verb``'s code for ``exc``; else 255 for an unreachable cell (not the
    operator's input: no command's table gives it a meaning), else 1 (an
    unreachable API database included: it is this host's configuration)."""
    code = verb.code_for(exc)
    if code is not None:
        return code
    if isinstance(exc, exception.CellUnavailable):
        return EXIT_UNEXPECTED
    return EXIT_ERROR


def _print_traceback(exc: BaseException) -> None:
    """``--debug``: the traceback, masked like every other line we print."""
    err(mask_url("".join(traceback.format_exception(exc))).rstrip())


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
    verb: Verb = args.verb
    debug = cli_logging.debug_requested(args)  # until the configuration says
    oslo_args = cli_logging.forwarded_args(args)
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
            cli_logging.register_opts(conf.CONF)
            loaded = conf.setup(oslo_args)
        except (OSError, UnicodeDecodeError) as exc:  # a default config file, or a race
            reason = f"cannot read a config file: {exc}"
            raise exception.ConfigurationError(reason=reason) from exc
        debug = bool(loaded.debug)
        verbose = cli_logging.verbose_requested(args)
        cli_logging.setup(loaded, verbose=verbose, version=_version())
        return _dispatch(verb, args, debug)
    except (exception.CellRouterError, cfg.Error) as exc:
        if debug:
            _print_traceback(exc)
        err(one_line(exc) or repr(exc))
        hint = verb.hint_for(exc)
        if hint:
            err(one_line(hint))
        return _exit_code(exc, verb)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if debug:
            _print_traceback(exc)
        detail = mask_url(str(exc)).strip().splitlines()
        err(f"error: {type(exc).__name__}: {detail[0] if detail else ''}".rstrip(": "))
        return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
