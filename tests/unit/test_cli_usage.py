"""A usage error shows the usage of the category or command it was made in, exit 2.

Through the real console script (no configuration needed: arguments are
checked before anything is loaded). Exit 2 is nova-manage's code for a usage
error (argparse's, which oslo.config lets through); its message, though, always
shows nova-manage's top-level usage: here it is the command's own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cellrouter.manage import catalog
from cellrouter.manage.verbs import Verb

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")
EXIT_USAGE = 2


def manage(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=120, check=False
    )


def usage_of(run: subprocess.CompletedProcess[str]) -> str:
    """The program and words the usage line names (``cellrouter-manage cell_v2 list_cells``)."""
    assert run.returncode == EXIT_USAGE, run
    assert run.stdout == ""
    first = run.stderr.splitlines()[0]
    assert first.startswith("usage: "), run.stderr
    return " ".join(word for word in first[len("usage: ") :].split() if not word.startswith("["))


def error_line(run: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in run.stderr.splitlines() if ": error: " in line]
    return line


@pytest.mark.parametrize("verb", catalog.VERBS, ids=lambda verb: f"{verb.category}-{verb.name}")
def test_an_unknown_option_shows_the_commands_usage(verb: Verb) -> None:
    required = [
        arg
        for opt in verb.options
        if opt.required
        for arg in ((opt.name, "x") if not opt.positional else ("x",))
    ]
    run = manage(verb.category, verb.name, *required, "--bogus")
    assert usage_of(run).startswith(f"cellrouter-manage {verb.category} {verb.name}")
    assert error_line(run) == (
        f"cellrouter-manage {verb.category} {verb.name}: error: unrecognized arguments: --bogus"
    )


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (
            ["cell_v2", "list_cells", "--bogus", "x"],
            "cellrouter-manage cell_v2 list_cells",
            "unrecognized arguments: --bogus x",
        ),
        (
            ["cell_v2", "list_cells", "extra"],
            "cellrouter-manage cell_v2 list_cells",
            "unrecognized arguments: extra",
        ),
        (
            ["cell_v2", "list_cells", "--verbose=yes"],
            "cellrouter-manage cell_v2 list_cells",
            "ignored explicit argument",
        ),
        (
            ["cell_v2", "verify_instance"],
            "cellrouter-manage cell_v2 verify_instance",
            "the following arguments are required: --uuid",
        ),
        (
            ["cell_v2", "create_cell", "--name"],
            "cellrouter-manage cell_v2 create_cell",
            "argument --name: expected one argument",
        ),
        (["api_db", "sync", "a", "b"], "cellrouter-manage api_db sync", "arguments: b"),
        # in a category: the category's usage
        (["cell_v2", "--bogus", "list_cells"], "cellrouter-manage cell_v2", "arguments: --bogus"),
        (["cell_v2", "frobnicate"], "cellrouter-manage cell_v2", "invalid choice: 'frobnicate'"),
        (["db"], "cellrouter-manage db", "required: COMMAND"),
        # before the category: the program's
        (["--bogus", "cell_v2", "list_cells"], "cellrouter-manage", "arguments: --bogus"),
        (["nope", "list_cells"], "cellrouter-manage", "invalid choice: 'nope'"),
    ],
)
def test_a_usage_error_shows_the_usage_where_it_was_made(
    argv: list[str], usage: str, error: str
) -> None:
    run = manage(*argv)
    named = usage_of(run)
    assert named == usage or named.startswith(f"{usage} "), run.stderr
    assert error_line(run).startswith(f"{usage}: error: ") and error in error_line(run)


def test_the_programs_own_option_after_the_command_says_where_it_goes() -> None:
    run = manage("cell_v2", "list_cells", "--debug", "--log-file=x.log")
    assert usage_of(run).startswith("cellrouter-manage cell_v2 list_cells")
    assert "--debug, --log-file=x.log: cellrouter-manage's own options go before CATEGORY" in (
        error_line(run)
    )


def test_help_still_exits_0_with_the_commands_help() -> None:
    run = manage("cell_v2", "list_cells", "--help")
    assert run.returncode == 0 and run.stdout.startswith("usage: cellrouter-manage cell_v2")
    assert "exit codes:" in run.stdout
