"""How a ``cellrouter-manage`` verb is declared: once, as data the CLI is built from.

A :class:`Verb` names its category, the :mod:`cellrouter.manage.commands`
function it calls, its options (:class:`Opt`), its help, its printer and its
exit codes (:class:`Exit`). :mod:`cellrouter.manage.cli` generates the
argparse tree, the ``--help`` epilogs and the error-to-code mapping from
these declarations, as alembic's ``CommandLine.register_command`` does from
its command functions; the verbs themselves are declared in
:mod:`cellrouter.manage.catalog`. Nothing here builds a parser or imports
the commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = [
    "COMMON_EXITS",
    "EXIT_ERROR",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "Exit",
    "Hint",
    "Opt",
    "Run",
    "Verb",
    "describe",
]

#: a cellrouter error no exit table names: also bad local input (a config
#: file that cannot be used, an unreachable API database)
EXIT_ERROR = 1
#: bad command-line arguments (argparse's own code)
EXIT_USAGE = 2
#: an unexpected error, or a cell that cannot be reached
EXIT_UNEXPECTED = 255

R = TypeVar("R")


@dataclasses.dataclass(eq=False)
class Run(Generic[R]):
    """One dispatch of a verb, as its printer, feedback and exit rules see it.

    ``failures``: errors the command reported through a feedback callback
    while carrying on (each already printed); ``result``: what the command
    returned, set once it returns.
    """

    args: argparse.Namespace
    failures: list[BaseException] = dataclasses.field(default_factory=list)
    result: R = dataclasses.field(init=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Opt:
    """One option of a verb.

    ``name`` is the spelling nova-manage documents (``--cell_uuid``,
    ``--transport-url``), or a bare word for a positional argument (optional
    unless ``required``). A flag also takes its other spelling, ``_`` and
    ``-`` swapped: nova-manage mixes both styles, so both always work, into
    one ``dest``. The value goes to the command's parameter ``param``
    (default: ``dest``), through ``parse`` when given (at dispatch, so its
    errors meet the verb's exit table); a ``printer_only`` option is read by
    the printer and the exit rules and never passed.
    """

    name: str
    help: str | None = None
    required: bool = False
    switch: bool = False
    metavar: str | None = None
    param: str | None = None
    printer_only: bool = False
    parse: Callable[[Any], Any] | None = None

    @property
    def positional(self) -> bool:
        return not self.name.startswith("-")

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def flags(self) -> tuple[str, ...]:
        """Every spelling: the declared one first, then all-``_`` and all-``-``."""
        if self.positional:
            return (self.name,)
        stem = self.name[2:]
        spellings = (self.name, f"--{stem.replace('-', '_')}", f"--{stem.replace('_', '-')}")
        return tuple(dict.fromkeys(spellings))

    @property
    def target(self) -> str | None:
        """The command parameter this option feeds (None: printer only)."""
        return None if self.printer_only else (self.param or self.dest)


#: a line printed after an error's message: text, or made from the error and
#: the verb (None: nothing to add for this error)
Hint = str | Callable[[BaseException, "Verb"], "str | None"]


class Exit:
    """One exit code of a verb and what it means.

    With ``errors``: the code of those exception classes (and subclasses);
    ``hint`` then adds a line to their message, e.g. the flag that gets
    past the refusal (library messages never name flags). With ``when``: a
    code that depends on the command's result. Neither: documentation only
    (success, 0).
    """

    __slots__ = ("code", "errors", "hint", "means", "when")

    def __init__(
        self,
        code: int,
        means: str = "",
        *errors: type[BaseException],
        when: Callable[[Run[Any]], bool] | None = None,
        hint: Hint | None = None,
    ) -> None:
        if not 0 <= code <= 255:
            raise ValueError(f"exit code {code} is not in 0..255")
        if errors and when is not None:
            raise ValueError(f"exit {code}: either errors or a result rule, not both")
        if hint is not None and not errors:
            raise ValueError(f"exit {code}: a hint belongs to errors")
        self.code = code
        self.means = means
        self.errors = errors
        self.when = when
        self.hint = hint

    def __repr__(self) -> str:
        return f"Exit({self.code}, {self.means!r})"


#: the codes every verb shares; ``main`` applies them, every --help repeats them
COMMON_EXITS = (
    Exit(
        EXIT_ERROR,
        "a cellrouter error (a config file or directory that cannot be used, the API "
        "database unreachable, ...)",
    ),
    Exit(EXIT_USAGE, "bad arguments (not valid UTF-8 included)"),
    Exit(EXIT_UNEXPECTED, "unexpected error (a cell that cannot be reached included)"),
)


def describe(exits: Sequence[Exit]) -> str:
    """``exits`` as help text: ``"0 deleted; 1 not found; ..."``."""
    return "; ".join(f"{e.code} {e.means}".rstrip() for e in exits)


@dataclasses.dataclass(frozen=True)
class Verb:
    """One ``cellrouter-manage CATEGORY NAME`` command, declared once.

    ``name`` defaults to the command function's name. ``printer`` prints the
    result (one per result type, :mod:`cellrouter.manage.printers`).
    ``feedback`` gives the command the keyword arguments only the CLI
    supplies: callbacks that print progress or failures while it runs.
    ``reprinted_log``: a logger whose lines the printer repeats, silenced
    unless ``--debug``. Checked when declared: each option feeds a
    parameter of ``command``, every parameter without a default is fed, and
    the exit table documents 0 and names no exception twice.
    """

    category: str
    command: Callable[..., Any]
    help: str
    printer: Callable[[Run[Any]], None]
    _: dataclasses.KW_ONLY
    name: str = ""
    options: tuple[Opt, ...] = ()
    exits: tuple[Exit, ...] = ()
    feedback: Callable[[Run[Any]], dict[str, Any]] | None = None
    reprinted_log: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.command.__name__)
        where = f"{self.category} {self.name}"
        dests = [opt.dest for opt in self.options]
        if len(set(dests)) != len(dests):
            raise ValueError(f"{where}: two options share a destination")
        params = inspect.signature(self.command).parameters
        open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
        fed = {opt.target for opt in self.options if opt.target}
        for target in fed - set(params):
            if not open_ended:
                raise ValueError(f"{where}: {self.command.__name__} has no parameter {target}")
        for param in params.values():
            if param.default is param.empty and param.kind is not param.VAR_KEYWORD:
                if param.name not in fed:
                    raise ValueError(f"{where}: no option gives {param.name}")
        if 0 not in self.codes:
            raise ValueError(f"{where}: the exit table does not document 0")
        errors = [klass for e in self.exits for klass in e.errors]
        if len(set(errors)) != len(errors):
            raise ValueError(f"{where}: an exception class has two exit codes")

    @property
    def codes(self) -> tuple[int, ...]:
        """The declared codes, in table order, each once."""
        return tuple(dict.fromkeys(e.code for e in self.exits))

    def arguments(self, args: argparse.Namespace) -> dict[str, Any]:
        """The command's keyword arguments from the parsed options."""
        kwargs = {}
        for opt in self.options:
            if opt.target:
                value = getattr(args, opt.dest)
                kwargs[opt.target] = opt.parse(value) if opt.parse else value
        return kwargs

    def _exit_for(self, exc: BaseException) -> Exit | None:
        """The row of ``exc``, looked up along its class's MRO (the nearest class wins)."""
        for klass in type(exc).__mro__:
            for row in self.exits:
                if klass in row.errors:
                    return row
        return None

    def code_for(self, exc: BaseException) -> int | None:
        """The declared code of ``exc`` (None: the common policy decides)."""
        row = self._exit_for(exc)
        return row.code if row else None

    def hint_for(self, exc: BaseException) -> str | None:
        """The line the CLI prints after ``exc``'s message, if any."""
        row = self._exit_for(exc)
        if row is None or row.hint is None:
            return None
        return row.hint if isinstance(row.hint, str) else row.hint(exc, self)

    def outcome(self, run: Run[Any]) -> int:
        """The code of a run that returned: the first result rule that holds, else 0."""
        for row in self.exits:
            if row.when is not None and row.when(run):
                return row.code
        return 0

    def flag_for(self, word: str) -> str | None:
        """The documented flag of the option named ``word`` (a parameter, dest or
        any spelling of a flag), or None when this verb has no such option."""
        key = word.lstrip("-").replace("-", "_")
        for opt in self.options:
            if not opt.positional and key in (opt.dest, opt.target):
                return opt.name
        return None
