"""The ``cellrouter-manage`` tree generated from the verb declarations.

Checks the generator itself: every declared verb is reachable under its
category with both spellings of its options, its ``--help`` lists exactly its
declared exit codes plus the common ones, and each exception class of its
exit table (and each result rule) gives the declared code, with its hint. The
commands are replaced by fakes (``main`` runs in-process), so these tests
need no database.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cellrouter.conf
from cellrouter import exception
from cellrouter.manage import catalog, cli
from cellrouter.manage.commands import InstanceState, SyncResult, VerifyResult
from cellrouter.manage.discovery import DiscoveryResult
from cellrouter.manage.instance_mapper import MapInstancesResult
from cellrouter.manage.verbs import COMMON_EXITS, Exit, Opt, Run, Verb

VERBS = catalog.VERBS
COMMON = [1, 2, 255]


def verb_id(verb: Verb) -> str:
    return f"{verb.category}-{verb.name}"


def find(category: str, name: str) -> Verb:
    [verb] = [v for v in VERBS if (v.category, v.name) == (category, name)]
    return verb


def required_argv(verb: Verb, skip: Opt | None = None) -> list[str]:
    """``CATEGORY NAME`` and a value for each required option (but ``skip``)."""
    argv = [verb.category, verb.name]
    for opt in verb.options:
        if opt.required and opt is not skip:
            argv += [opt.name, "x"] if not opt.positional else ["x"]
    return argv


def codes_of(line: str) -> list[int]:
    """The codes a ``"... 0 done; 1 not found; ..."`` help line lists, in order."""
    return [int(code) for code in re.findall(r"(?:: |; )(\d+)\b", line)]


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """An empty config file for in-process runs of ``main``; the clean configuration
    is restored afterwards."""
    path = tmp_path / "empty.conf"
    path.write_text("[DEFAULT]\n")
    yield path
    cellrouter.conf.setup([], default_config_files=[])


@pytest.fixture
def run_with(
    monkeypatch: pytest.MonkeyPatch, config: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """``run_with(verb, command, *argv)``: ``main`` with ``verb``'s command replaced."""

    def run(verb: Verb, command: Callable[..., Any], *argv: str) -> tuple[int, str, str]:
        fake = dataclasses.replace(verb, command=command)
        monkeypatch.setattr(cli, "VERBS", [fake if v is verb else v for v in VERBS])
        code = cli.main(["--config-file", str(config), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def raising(exc: BaseException) -> Callable[..., Any]:
    def command(**kwargs: Any) -> Any:
        raise exc

    return command


def returning(result: Any) -> Callable[..., Any]:
    def command(**kwargs: Any) -> Any:
        return result

    return command


# -- the tree --------------------------------------------------------------------


def test_every_category_is_declared_and_holds_verbs() -> None:
    assert {verb.category for verb in VERBS} == set(catalog.CATEGORIES)
    names = [(verb.category, verb.name) for verb in VERBS]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("verb", VERBS, ids=verb_id)
def test_every_verb_is_reachable_under_its_category(verb: Verb) -> None:
    args = cli.build_parser().parse_args(required_argv(verb))
    assert (args.category, args.command, args.verb) == (verb.category, verb.name, verb)


def test_a_verb_under_another_category_is_not_reachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["db", "list_cells"])
    assert exited.value.code == 2
    assert "invalid choice: 'list_cells'" in capsys.readouterr().err


@pytest.mark.parametrize("verb", VERBS, ids=verb_id)
def test_help_lists_exactly_the_declared_and_common_exit_codes(
    verb: Verb, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([verb.category, verb.name, "--help"])
    assert exited.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    [own] = [line for line in lines if line.startswith("exit codes: ")]
    [common] = [line for line in lines if line.startswith("exit codes common to every command: ")]
    assert codes_of(own) == [exit.code for exit in verb.exits]
    assert codes_of(common) == COMMON
    for exit in verb.exits:
        assert f"{exit.code} {exit.means}".rstrip() in own
    for exit in COMMON_EXITS:
        assert f"{exit.code} {exit.means}" in common


def test_top_level_help_lists_the_common_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert codes_of(text[text.index("exit codes: ") :]) == [0, *COMMON]


#: every flag with two spellings
_TWO_SPELLINGS = [
    (verb, opt)
    for verb in VERBS
    for opt in verb.options
    if not opt.positional and re.search(r"[_-]", opt.name[2:])
]


@pytest.mark.parametrize(
    ("verb", "opt"),
    _TWO_SPELLINGS,
    ids=lambda p: p.name if isinstance(p, Opt) else verb_id(p),
)
def test_both_spellings_of_an_option_parse_to_one_destination(verb: Verb, opt: Opt) -> None:
    stem = opt.name[2:]
    spellings = {f"--{stem.replace('-', '_')}", f"--{stem.replace('_', '-')}"}
    assert len(spellings) == 2
    parser = cli.build_parser()
    for flag in spellings:
        given = [flag] if opt.switch else [flag, "value"]
        args = parser.parse_args([*required_argv(verb, skip=opt), *given])
        assert getattr(args, opt.dest) == (True if opt.switch else "value"), flag


def test_an_unknown_option_shows_the_verbs_usage(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["cell_v2", "delete_cell", "--cell_uuid", "x", "--bogus"])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("usage: cellrouter-manage cell_v2 delete_cell ")
    assert "--cell_uuid CELL_UUID" in stderr
    assert "error: unrecognized arguments: --bogus" in stderr


def test_an_abbreviation_of_both_spellings_is_not_ambiguous() -> None:
    args = cli.build_parser().parse_args(["db", "sync", "--all"])
    assert args.all_cells is True


def test_every_flag_named_in_help_or_hints_is_an_option_of_the_verb() -> None:
    for verb in VERBS:
        flags = {flag for opt in verb.options for flag in opt.flags}
        for exit in verb.exits:
            texts = [exit.means] + ([exit.hint] if isinstance(exit.hint, str) else [])
            for text in texts:
                for flag in re.findall(r"--[a-z][\w-]*", text):
                    assert flag in flags, (verb_id(verb), flag)


# -- exit codes ----------------------------------------------------------------------


_ERRORS = [(verb, exit, klass) for verb in VERBS for exit in verb.exits for klass in exit.errors]


@pytest.mark.parametrize(
    ("verb", "exit", "klass"),
    _ERRORS,
    ids=[f"{verb_id(v)}-{k.__name__}" for v, _, k in _ERRORS],
)
def test_every_error_of_an_exit_table_exits_with_its_code(
    run_with: Callable[..., tuple[int, str, str]],
    verb: Verb,
    exit: Exit,
    klass: type[BaseException],
) -> None:
    error = klass("it failed")
    assert verb.code_for(error) == exit.code  # declared, not the common default
    code, out, err = run_with(verb, raising(error), *required_argv(verb))
    assert code == exit.code
    assert err.splitlines()[0] == "it failed" and out == ""


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (exception.CellUnavailable("cell down"), 255),
        (exception.ApiDatabaseUnavailable("api down"), 1),
        (exception.CellRouterError("other"), 1),
        (RuntimeError("bug"), 255),
    ],
)
def test_errors_no_table_names_follow_the_common_policy(
    run_with: Callable[..., tuple[int, str, str]], error: BaseException, code: int
) -> None:
    assert (
        run_with(find("cell_v2", "list_cells"), raising(error), "cell_v2", "list_cells")[0] == code
    )


def test_a_subclass_takes_its_nearest_declared_class() -> None:
    class Nearer(exception.CellHasHosts):
        pass

    verb = dataclasses.replace(
        find("cell_v2", "delete_cell"),
        exits=(Exit(0), Exit(7, "near", Nearer), Exit(8, "far", exception.Conflict)),
    )
    assert verb.code_for(Nearer("x")) == 7
    assert verb.code_for(exception.CellHasHosts("x")) == 8
    assert verb.code_for(exception.NotFound("x")) is None


def test_hints_name_the_flag_the_library_message_does_not(
    run_with: Callable[..., tuple[int, str, str]],
) -> None:
    delete = find("cell_v2", "delete_cell")
    only_deleted = exception.CellHasOnlyDeletedInstances(uuid="u1", count=2)
    code, _, err = run_with(delete, raising(only_deleted), *required_argv(delete))
    assert code == 4
    assert err.splitlines() == [str(only_deleted), "Use --force to delete them with the cell."]

    update = find("cell_v2", "update_cell")
    both = exception.ConflictingOptions(options=("disable", "enable"))
    code, _, err = run_with(update, raising(both), *required_argv(update))
    assert code == 4 and err.splitlines()[1] == "Pass either --disable or --enable, not both."


@pytest.mark.parametrize(
    ("verb", "option", "hint"),
    [
        (("cell_v2", "create_cell"), "--transport-url", "Pass it with --transport-url."),
        (("cell_v2", "create_cell"), "database_connection", "Pass it with --database_connection."),
        (("cell_v2", "map_cell0"), "--database-connection", "Pass it with --database_connection."),
        # simple_cell_setup has no such flag: no hint rather than a wrong one
        (("cell_v2", "simple_cell_setup"), "--database_connection", None),
    ],
)
def test_a_missing_url_hints_at_the_verbs_own_flag(
    run_with: Callable[..., tuple[int, str, str]],
    verb: tuple[str, str],
    option: str,
    hint: str | None,
) -> None:
    missing = exception.MissingURL(kind="some", option=option, config="[x]/y")
    declared = find(*verb)
    code, _, err = run_with(declared, raising(missing), *required_argv(declared))
    assert code == 1
    assert err.splitlines() == [str(missing)] + ([hint] if hint else [])


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (InstanceState.MAPPED, 0),
        (InstanceState.NOT_MAPPED, 1),
        (InstanceState.BUILDING, 2),
        (InstanceState.SOFT_DELETED, 3),
        (InstanceState.ARCHIVED, 4),
        (InstanceState.MISSING, 4),
        (InstanceState.CELL_UNREACHABLE, 5),
    ],
)
def test_result_rules_give_the_declared_codes(
    run_with: Callable[..., tuple[int, str, str]], state: InstanceState, code: int
) -> None:
    verify = find("cell_v2", "verify_instance")
    result = VerifyResult("i-1", state, reason="down")
    got, out, _ = run_with(verify, returning(result), "cell_v2", "verify_instance", "--uuid", "i-1")
    assert got == code
    assert out.startswith("Instance i-1 ")


def test_discover_hosts_rules_in_table_order(
    run_with: Callable[..., tuple[int, str, str]],
) -> None:
    verb = find("cell_v2", "discover_hosts")
    argv = ("cell_v2", "discover_hosts", "--strict")
    nothing = DiscoveryResult([], [], 1)
    failed = DiscoveryResult([], [], 1, {"c1": "Cell c1 is unavailable: down"})
    found = DiscoveryResult([("c1", "h1")], [], 1)
    assert run_with(verb, returning(nothing), *argv)[0] == 1
    assert run_with(verb, returning(nothing), "cell_v2", "discover_hosts")[0] == 0
    assert run_with(verb, returning(failed), *argv)[0] == 255  # before --strict's 1
    assert run_with(verb, returning(found), *argv)[0] == 0


def test_feedback_reports_failures_that_set_the_code(
    run_with: Callable[..., tuple[int, str, str]],
) -> None:
    def db_sync(
        version: str | None,
        all_cells: bool,
        local_cell: bool,
        progress: Any = None,
        failed: Any = None,
    ) -> Any:
        done = SyncResult("cell good", None, "head")
        progress(done)
        failed(exception.CellUnavailable(cell="bad", reason="refused"))
        return [done]

    code, out, err = run_with(find("db", "sync"), db_sync, "db", "sync", "--all_cells")
    assert code == 255
    assert out.splitlines() == ["cell good: base -> head", "1 cell(s) migrated, 1 failed."]
    assert err.splitlines() == ["Cell bad is unavailable: refused"]


def test_parse_errors_meet_the_exit_table_before_the_command_runs(
    run_with: Callable[..., tuple[int, str, str]],
) -> None:
    calls: list[dict[str, Any]] = []

    def map_instances(**kwargs: Any) -> MapInstancesResult:
        calls.append(kwargs)
        return MapInstancesResult(mapped=2, complete=False)

    verb = find("cell_v2", "map_instances")
    argv = ("cell_v2", "map_instances", "--cell-uuid", "c1")
    assert run_with(verb, map_instances, *argv, "--max-count", "abc")[0] == 127
    assert calls == []
    code, out, _ = run_with(verb, map_instances, *argv, "--max_count", "5")
    assert code == 1 and "more remain" in out
    assert calls == [{"cell_uuid": "c1", "max_count": 5, "reset": False, "progress": None}]


@pytest.mark.parametrize(("debug", "silenced"), [((), True), (("--debug",), False)])
def test_a_reprinted_log_is_silenced_while_the_command_runs(
    run_with: Callable[..., tuple[int, str, str]], debug: tuple[str, ...], silenced: bool
) -> None:
    verb = find("cell_v2", "discover_hosts")
    logger = logging.getLogger(verb.reprinted_log or "")
    seen: list[bool] = []

    def discover_hosts(**kwargs: Any) -> DiscoveryResult:
        seen.append(not logger.isEnabledFor(logging.ERROR))
        return DiscoveryResult([], [], 0)

    level = logger.level
    assert run_with(verb, discover_hosts, *debug, "cell_v2", "discover_hosts")[0] == 0
    assert seen == [silenced] and logger.level == level


# -- the declarations are checked --------------------------------------------------


def _noop(run: Run[Any]) -> None:
    pass


def _command(cell_uuid: str, force: bool = False) -> None:
    pass


@pytest.mark.parametrize(
    ("options", "exits", "problem"),
    [
        ((Opt("--cell_uuid"), Opt("--frce")), (Exit(0),), "has no parameter frce"),
        ((Opt("--force"),), (Exit(0),), "no option gives cell_uuid"),
        ((Opt("--cell_uuid"), Opt("--cell-uuid")), (Exit(0),), "share a destination"),
        ((Opt("--cell_uuid"),), (Exit(1, "x", exception.NotFound),), "does not document 0"),
        (
            (Opt("--cell_uuid"),),
            (Exit(0), Exit(1, "a", exception.NotFound), Exit(2, "b", exception.NotFound)),
            "two exit codes",
        ),
    ],
)
def test_a_bad_declaration_is_refused(
    options: tuple[Opt, ...], exits: tuple[Exit, ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Verb("cell_v2", _command, "help", _noop, options=options, exits=exits)


def test_a_printer_only_option_and_a_param_name_are_accepted() -> None:
    verb = Verb(
        "cell_v2",
        _command,
        "help",
        _noop,
        options=(Opt("--uuid", param="cell_uuid"), Opt("--verbose", printer_only=True)),
        exits=(Exit(0),),
    )
    assert verb.name == "_command"
    args = cli.build_parser([verb]).parse_args(["cell_v2", "_command", "--uuid", "u"])
    assert verb.arguments(args) == {"cell_uuid": "u"}


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: Exit(256), "not in 0..255"),
        (lambda: Exit(1, "x", exception.NotFound, when=lambda run: True), "not both"),
        (lambda: Exit(1, "x", hint="Use --force."), "hint belongs to errors"),
    ],
)
def test_a_bad_exit_row_is_refused(make: Callable[[], Exit], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make()


def test_a_verb_in_an_undeclared_category_is_refused() -> None:
    stray = Verb("nova", _command, "help", _noop, options=(Opt("--cell_uuid"),), exits=(Exit(0),))
    with pytest.raises(ValueError, match="undeclared categories: nova"):
        cli.build_parser([stray])
