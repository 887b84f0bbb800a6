"""What ``db archive_deleted_rows`` and ``db purge`` print, as nova-manage prints it.

Quiet by default (the exit code says whether rows were archived or purged);
``--verbose`` adds the per-table count (archive) or one line per purged
table; a cell that fails is one line on stderr. On a terminal (stdout a tty)
the archive keeps a running count on one rewritten line.
"""

from __future__ import annotations

import sys
from typing import Any

from cellrouter.exception import CellUnavailable
from cellrouter.manage.archive import ArchiveResult, PurgeResult
from cellrouter.manage.printers import err, one_line, out, table
from cellrouter.manage.verbs import Run

__all__ = ["archive_feedback", "archived", "purge_feedback", "purged"]


def _failed_printer(run: Run[Any]) -> Any:
    def failed(exc: CellUnavailable) -> None:
        run.failures.append(exc)
        err(one_line(exc))

    return failed


def _progress(rows: int) -> None:
    sys.stdout.write(f"\rArchiving: {rows} row(s)")
    sys.stdout.flush()


def archive_feedback(run: Run[ArchiveResult]) -> dict[str, Any]:
    """Progress on a terminal only; failed cells on stderr as they fail."""
    return {
        "progress": _progress if sys.stdout.isatty() else None,
        "failed": _failed_printer(run),
    }


def purge_feedback(run: Run[PurgeResult]) -> dict[str, Any]:
    return {"failed": _failed_printer(run)}


def _print_purged(result: PurgeResult) -> None:
    for where, name, column, rows in result.tables:
        out(f"{where}: Deleted {rows} rows from {name} based on timestamp column {column}")


def archived(run: Run[ArchiveResult]) -> None:
    result = run.result
    if sys.stdout.isatty() and result.total:  # end the progress line
        out(" (stopped)" if result.interrupted else " (complete)")
    if run.args.verbose:
        if result.rows:
            rows = sorted(result.rows.items())
            out(table(["Table", "Number of Rows Archived"], rows))
        else:
            out("Nothing was archived.")
        if result.purged is not None:
            out("Rows were archived, running purge...")
            _print_purged(result.purged)


def purged(run: Run[PurgeResult]) -> None:
    if run.args.verbose:
        _print_purged(run.result)
