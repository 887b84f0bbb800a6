"""The CLI's logging: oslo.log's options on cellrouter's ``CONF``, and logging set up from them.

Only ``cellrouter-manage`` calls this module: a service embedding cellrouter
(with its own ``ConfigOpts`` or none) keeps its logging as it set it up, so
nothing here runs on import and nothing touches the root logger until the CLI
asks. oslo.log's command-line options (``--log-file``, ``--log-dir``,
``--use-syslog``, ``--debug``, ``--log-config-append``, ...) are registered on
cellrouter's own ``CONF`` and mirrored on the top-level argparse parser, so
they go before the category as with nova-manage; their values are handed back
to oslo.config, which also reads them from the config file's ``[DEFAULT]``.

Where logs go: with a log file or directory, syslog, journald, a logging
config file, ``use_stderr`` or ``use_json``, oslo.log sets up logging exactly
as in a service (level INFO, DEBUG with ``debug``). Otherwise logs go to
stderr at WARNING (INFO with ``--verbose``, DEBUG with ``debug``). stdout
always carries the command's output only: oslo.log's fallback to stdout is
sent to stderr at that console level.
"""

from __future__ import annotations

import argparse
import logging
import sys

from oslo_config import cfg
from oslo_log import _options as oslo_log_options
from oslo_log import log as oslo_log

from cellrouter import exception

__all__ = [
    "add_arguments",
    "debug_requested",
    "forwarded_args",
    "register_opts",
    "setup",
    "verbose_requested",
]

#: oslo.log's command-line options (the ones the generator lists under "oslo.log").
_CLI_OPTS: tuple[cfg.Opt, ...] = (
    *oslo_log_options.common_cli_opts,
    *oslo_log_options.logging_cli_opts,
)
#: argparse destinations of the mirrored options (prefixed: verbs have their own options)
_DEST_PREFIX = "oslo_log_"
#: an option only oslo.log registers: present once :func:`register_opts` ran
_MARKER_OPT = "log_config_append"
#: console format when no oslo.log destination is configured
_CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
_PRODUCT = "cellrouter"
#: quieter than oslo.log's defaults for what the CLI runs (as nova-manage adds its own)
_EXTRA_LOG_LEVELS = ("alembic.runtime.plugins=WARN",)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register oslo.log's options on ``conf`` (cellrouter's ``CONF``), once.

    oslo.config accepts command-line options only before a parse, so an
    already parsed ``conf`` is cleared first (the caller parses it next).
    oslo.log's registration adds a temporary stderr handler to a handler-less
    root logger; it is removed again: :func:`setup` installs the real ones.
    """
    if _MARKER_OPT in conf:
        return
    conf.clear()
    root = logging.getLogger()
    before = list(root.handlers)
    oslo_log.register_options(conf)
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)


def add_arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Add oslo.log's command-line options (and ``-v/--verbose``) to the top-level parser.

    Each keeps oslo.config's spellings: a boolean also as ``--noNAME``, the
    deprecated aliases (``--logfile``, ``--logdir``, ``--log-config``) too.
    Returns the actions added.
    """
    group = parser.add_argument_group("logging (oslo.log; also [DEFAULT] options)")
    actions: list[argparse.Action] = []
    for opt in _CLI_OPTS:
        dest = _DEST_PREFIX + opt.dest
        flags = [f"--{opt.name}"]
        flags += [f"--{old.name}" for old in opt.deprecated_opts if old.name and not old.group]
        if opt.short:
            flags.insert(0, f"-{opt.short}")
        help_text = _help(opt)
        if opt.dest == "debug":
            help_text = (
                "Log at DEBUG level (the default is INFO, WARNING on the console) "
                "and show the traceback of an error."
            )
        if isinstance(opt, cfg.BoolOpt):
            actions += [
                group.add_argument(
                    *flags, dest=dest, action="store_const", const=True, help=help_text
                ),
                group.add_argument(
                    f"--no{opt.name}",
                    dest=dest,
                    action="store_const",
                    const=False,
                    help=f"The inverse of --{opt.name}.",
                ),
            ]
        else:
            metavar = opt.metavar or opt.dest.upper()
            actions.append(group.add_argument(*flags, dest=dest, metavar=metavar, help=help_text))
    verbose = group.add_argument(
        "-v",
        "--verbose",
        dest=_DEST_PREFIX + "verbose",
        action="store_true",
        help="Log INFO messages to stderr too (the default is WARNING); no effect "
        "when logging goes to a file, syslog or journald.",
    )
    return [*actions, verbose]


def _help(opt: cfg.Opt) -> str:
    """``opt``'s help for argparse, its ``%(default)s`` filled with oslo.config's default."""
    text = opt.help or ""
    return text.replace("%(default)s", str(opt.default).replace("%", "%%"))


def forwarded_args(args: argparse.Namespace) -> list[str]:
    """The oslo.log options given on the command line, as oslo.config parses them."""
    argv: list[str] = []
    for opt in _CLI_OPTS:
        value = getattr(args, _DEST_PREFIX + opt.dest, None)
        if value is None:
            continue
        if isinstance(opt, cfg.BoolOpt):
            argv.append(f"--{opt.name}" if value else f"--no{opt.name}")
        else:
            argv.append(f"--{opt.name}={value}")
    return argv


def debug_requested(args: argparse.Namespace) -> bool:
    """``--debug`` was given (for errors before the configuration is loaded)."""
    return bool(getattr(args, _DEST_PREFIX + "debug", None))


def verbose_requested(args: argparse.Namespace) -> bool:
    """``--verbose`` was given."""
    return bool(getattr(args, _DEST_PREFIX + "verbose", False))


def setup(conf: cfg.ConfigOpts, *, verbose: bool, version: str) -> None:
    """Set up the CLI's logging from ``conf`` (parsed, :func:`register_opts` done).

    Raises :class:`~cellrouter.exception.ConfigurationError` when a log file,
    directory or logging config file cannot be used (bad local input).
    """
    console_level = logging.DEBUG if conf.debug else logging.INFO if verbose else logging.WARNING
    if not _has_destination(conf):
        _console(console_level)
        return
    levels = [*oslo_log.get_default_log_levels(), *_EXTRA_LOG_LEVELS]
    conf.set_default("default_log_levels", levels)
    try:
        oslo_log.setup(conf, _PRODUCT, version)
    except (OSError, ImportError, RuntimeError, oslo_log.LogConfigError) as exc:
        raise exception.ConfigurationError(reason=f"cannot set up logging: {_why(exc)}") from exc
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)  # stdout is the command's output
            handler.setLevel(console_level)


def _has_destination(conf: cfg.ConfigOpts) -> bool:
    """Whether oslo.log is told where (or how) to log, beyond the CLI's console default."""
    return bool(
        conf.log_config_append
        or conf.log_file
        or conf.log_dir
        or conf.use_syslog
        or conf.use_journal
        or conf.use_stderr
        or conf.use_json
    )


def _console(level: int) -> None:
    """Log to stderr at ``level``, unless the root logger has handlers already."""
    logging.basicConfig(level=level, format=_CONSOLE_FORMAT, stream=sys.stderr)


def _why(exc: BaseException) -> str:
    """One line about a logging set-up failure: the file and the OS's reason if known."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
