"""``cellrouter-manage`` logs through oslo.log; a service embedding cellrouter keeps its logging.

Through the real console script on SQLite files: oslo.log's options go before
the category like nova-manage's (or in ``[DEFAULT]``), logs land where they
say, stdout carries the command's output only, ``--debug`` still adds the
traceback of an error, and a log destination that cannot be used is bad local
input (exit 1, one line).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("cellrouter-manage")
#: what ``db sync`` logs at INFO (alembic) and what it prints on stdout
MIGRATING = "Running upgrade"
SYNCED = "api database: base -> "


def manage(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *map(str, argv)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cellrouter.conf"
    path.write_text(
        f"[api_database]\nconnection = sqlite:///{tmp_path / 'api.db'}\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'cell.db'}\n"
    )
    return path


def _only_output(run: subprocess.CompletedProcess[str]) -> list[str]:
    """stdout's lines, each checked to be the command's output rather than a log line."""
    lines = run.stdout.splitlines()
    for line in lines:
        assert MIGRATING not in line and "INFO" not in line and not line.startswith("{"), run
    return lines


@pytest.mark.parametrize("flag", ["--log-file", "--logfile"])
def test_log_file_before_the_category_gets_the_logs(
    config: Path, tmp_path: Path, flag: str
) -> None:
    log = tmp_path / "manage.log"
    run = manage("--config-file", config, flag, log, "api_db", "sync")
    assert run.returncode == 0, run.stderr
    assert any(line.startswith(SYNCED) for line in _only_output(run))
    text = log.read_text()
    assert f"INFO alembic.runtime.migration [-] {MIGRATING}" in text
    assert " DEBUG " not in text  # INFO by default
    assert MIGRATING not in run.stderr
    # the option order of nova-manage's docs: logging options first, then the config
    again = manage(flag, log, "--config-file", config, "cell_v2", "list_cells")
    assert again.returncode == 0, again.stderr
    assert "Name" in again.stdout


def test_debug_logs_at_debug_and_still_shows_the_traceback_of_an_error(
    config: Path, tmp_path: Path
) -> None:
    log = tmp_path / "debug.log"
    run = manage("--config-file", config, "--debug", "--log-file", log, "api_db", "sync")
    assert run.returncode == 0, run.stderr
    assert " DEBUG alembic." in log.read_text()
    _only_output(run)

    broken = tmp_path / "broken.conf"
    broken.write_text(f"[api_database]\nconnection = sqlite:///{tmp_path}/no/such/dir/api.db\n")
    for debug in ("--debug", "-d"):
        run = manage("--config-file", broken, debug, "--log-file", log, "cell_v2", "list_cells")
        assert run.returncode == 1, run.stderr
        assert "Traceback" in run.stderr and "[api_database]/connection" in run.stderr
    run = manage("--config-file", broken, "--nodebug", "cell_v2", "list_cells")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_log_dir_alone_names_the_file_after_the_program(config: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    run = manage("--config-file", config, "--log-dir", logs, "api_db", "sync")
    assert run.returncode == 0, run.stderr
    assert MIGRATING in (logs / "cellrouter-manage.log").read_text()


def test_logging_options_are_read_from_the_config_file_too(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "from-config.log"
    config.write_text(config.read_text() + f"[DEFAULT]\nlog_file = {log}\ndebug = true\n")
    run = manage("--config-file", config, "api_db", "sync")
    assert run.returncode == 0, run.stderr
    assert " DEBUG alembic." in log.read_text() and MIGRATING not in run.stderr


def test_without_a_destination_logs_go_to_stderr_at_warning_or_info_with_verbose(
    config: Path,
) -> None:
    quiet = manage("--config-file", config, "api_db", "sync")
    assert quiet.returncode == 0, quiet.stderr
    assert MIGRATING not in quiet.stderr + quiet.stdout
    manage("--config-file", config, "api_db", "sync", "base")
    verbose = manage("--config-file", config, "--verbose", "api_db", "sync")
    assert verbose.returncode == 0, verbose.stderr
    assert f"INFO alembic.runtime.migration: {MIGRATING}" in verbose.stderr
    assert any(line.startswith(SYNCED) for line in _only_output(verbose))


def test_top_level_verbose_is_not_list_cells_verbose(config: Path) -> None:
    """``-v`` before the category is logging; ``list_cells --verbose`` shows passwords."""
    secret = "Pw4list"
    assert manage("--config-file", config, "api_db", "sync").returncode == 0
    url = f"mysql+pymysql://admin:{secret}@127.0.0.1:1/cell1"  # refused at once: a warning
    created = manage(
        "--config-file",
        config,
        *("cell_v2", "create_cell", "--name", "cell1"),
        *("--database_connection", url, "--transport-url", "none:///"),
    )
    assert created.returncode == 0, created.stderr
    logging_only = manage("--config-file", config, "-v", "cell_v2", "list_cells")
    assert logging_only.returncode == 0 and secret not in logging_only.stdout
    both = manage("--config-file", config, "-v", "cell_v2", "list_cells", "--verbose")
    assert both.returncode == 0 and secret in both.stdout


@pytest.mark.parametrize("destination", [("--use-json",), ("--use-syslog",)])
def test_oslo_logs_never_reach_stdout(
    config: Path, destination: tuple[str, ...], tmp_path: Path
) -> None:
    """oslo.log falls back to stdout when no file is set: the CLI sends that to stderr."""
    run = manage("--config-file", config, *destination, "--debug", "api_db", "sync")
    assert run.returncode == 0, run.stderr
    assert [line for line in _only_output(run) if line.startswith(SYNCED)]
    if destination == ("--use-json",):
        records = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
        assert any(MIGRATING in record["message"] for record in records)


def test_log_config_append_uses_the_logging_config_file(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "appended.log"
    logging_conf = tmp_path / "logging.conf"
    logging_conf.write_text(
        textwrap.dedent(
            f"""\
            [loggers]
            keys = root
            [handlers]
            keys = file
            [formatters]
            keys = context
            [logger_root]
            level = INFO
            handlers = file
            [handler_file]
            class = FileHandler
            args = ({str(log)!r},)
            formatter = context
            [formatter_context]
            class = oslo_log.formatters.ContextFormatter
            """
        )
    )
    run = manage("--config-file", config, "--log-config-append", logging_conf, "api_db", "sync")
    assert run.returncode == 0, run.stderr
    assert MIGRATING in log.read_text()
    _only_output(run)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (("--log-file", "{tmp}/no/such/dir/x.log"), "{tmp}/no/such/dir/x.log"),
        (("--log-dir", "{tmp}/no/such/dir"), "{tmp}/no/such/dir/cellrouter-manage.log"),
        (("--log-config-append", "{tmp}/missing-logging.conf"), "{tmp}/missing-logging.conf"),
    ],
)
def test_an_unusable_log_destination_is_bad_local_input(
    config: Path, tmp_path: Path, argv: tuple[str, str], names: str
) -> None:
    flag, value = argv
    run = manage("--config-file", config, flag, value.format(tmp=tmp_path), "db", "version")
    assert run.returncode == 1, run
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "cannot set up logging" in run.stderr and names.format(tmp=tmp_path) in run.stderr


def test_a_log_option_value_is_not_taken_for_the_category(config: Path, tmp_path: Path) -> None:
    """The symptom of the issue: ``--log-file x.log`` read as an invalid category 'x.log'."""
    run = manage("--log-file", tmp_path / "x.log", "--config-file", config, "db", "version")
    assert run.returncode == 0, run.stderr
    assert "invalid choice" not in run.stderr


def test_an_embedding_service_keeps_its_own_logging(tmp_path: Path) -> None:
    """setup() with the service's ConfigOpts, or with none, and real work: root logger,
    levels and the service's options untouched; oslo.log's options only come with the CLI."""
    script = textwrap.dedent(
        f"""
        import logging, sys
        from oslo_config import cfg
        import cellrouter
        from cellrouter.cells.context import get_admin_context
        from cellrouter.index.cell_mapping import CellMapping

        root = logging.getLogger()
        marker = logging.NullHandler()
        root.addHandler(marker)
        root.setLevel(logging.ERROR)
        api = "sqlite:///{tmp_path}/api.db"
        cellrouter.sync_schema("api", api)

        service = cfg.ConfigOpts()
        service([], project="svc", default_config_files=[])
        cellrouter.setup(conf=service)
        service.set_override("connection", api, group="api_database")
        CellMapping.create(get_admin_context(), name="c", database_connection="sqlite://",
                           transport_url="none:///")
        assert "log_file" not in service and "debug" not in service, "registered on the service"

        cellrouter.setup([], default_config_files=[])
        assert "log_file" not in cellrouter.CONF, "oslo.log options outside the CLI"
        assert root.handlers == [marker], root.handlers
        assert root.level == logging.ERROR, root.level
        assert sys.excepthook is sys.__excepthook__
        print("untouched")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "untouched"
