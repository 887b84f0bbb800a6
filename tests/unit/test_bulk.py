"""cellrouter.db.bulk: insert-ignore (both code paths), retries, cell errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa

from cellrouter import exception
from cellrouter.db import bulk

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(50), nullable=False, unique=True),
    sa.Column("size", sa.Integer),
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bulk.db'}", poolclass=sa.pool.NullPool)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(things), [{"name": "b", "size": 0}, {"name": "d", "size": 0}])
    yield engine
    engine.dispose()


def _rows(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: size for name, size in conn.execute(sa.select(things.c.name, things.c.size))}


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "row-by-row"])
@pytest.mark.parametrize("skip_existing", [False, True])
def test_insert_ignore_reports_exactly_what_it_inserted(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, returning: bool, skip_existing: bool
) -> None:
    if not returning:  # a backend without INSERT ... RETURNING
        monkeypatch.setattr(engine.dialect, "insert_returning", False)
    rows = [{"name": name, "size": 1} for name in "abcde"]
    with engine.begin() as conn:
        inserted = bulk.insert_ignore(
            conn, things, rows, things.c.name, skip_existing=skip_existing
        )
    assert sorted(inserted) == ["a", "c", "e"]
    assert _rows(engine) == {"a": 1, "b": 0, "c": 1, "d": 0, "e": 1}
    with engine.begin() as conn:
        assert bulk.insert_ignore(conn, things, rows, things.c.name) == []
        assert bulk.insert_ignore(conn, things, [], things.c.name) == []


def test_existing_keys_and_chunks(engine: sa.Engine) -> None:
    assert [list(c) for c in bulk.chunks(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]
    with engine.connect() as conn:
        assert bulk.existing_keys(conn, things.c.name, ["a", "b", "d", "x"]) == {"b", "d"}


def _dbapi_error(orig: BaseException) -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("INSERT ...", {}, orig)


def test_retry_on_deadlock_retries_then_gives_up() -> None:
    calls: list[Any] = []

    def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise _dbapi_error(pymysql.err.OperationalError(1213, "Deadlock found"))
        return value * 2

    assert bulk.retry_on_deadlock(flaky, 21, base_delay=0) == 42
    assert calls == [21, 21, 21]

    def always() -> None:
        calls.append("x")
        raise _dbapi_error(pymysql.err.OperationalError(1213, "Deadlock found"))

    calls.clear()
    with pytest.raises(sa.exc.OperationalError):
        bulk.retry_on_deadlock(always, attempts=4, base_delay=0)
    assert calls == ["x"] * 4

    def broken() -> None:
        calls.append("y")
        raise _dbapi_error(sqlite3.OperationalError("no such table: x"))

    calls.clear()
    with pytest.raises(sa.exc.OperationalError):
        bulk.retry_on_deadlock(broken, base_delay=0)
    assert calls == ["y"]


def test_retry_on_deadlock_runs_at_least_once() -> None:
    calls: list[str] = []

    def once() -> int:
        calls.append("z")
        return 7

    assert bulk.retry_on_deadlock(once, attempts=1) == 7
    assert bulk.retry_on_deadlock(once, attempts=0) == 7
    assert calls == ["z", "z"]


def test_insert_ignore_on_an_unsupported_backend_names_it() -> None:
    oracle = SimpleNamespace(dialect=SimpleNamespace(name="oracle"))
    with pytest.raises(exception.UnsupportedBackend) as err:
        bulk.insert_ignore(oracle, things, [{"name": "x"}], things.c.name)  # type: ignore[arg-type]
    assert isinstance(err.value, exception.ConfigurationError)
    assert str(err.value) == (
        "The oracle database backend is not supported for insert-ignore writes "
        "(supported: sqlite, postgresql, mysql, mariadb)."
    )


def test_cell_unavailable_masks_secrets() -> None:
    exc = _dbapi_error(RuntimeError("cannot reach mysql+pymysql://nova:s3cret@db1/nova\nmore"))
    error = bulk.cell_unavailable("cell1(abc)", exc)
    assert isinstance(error, exception.CellUnavailable)
    assert "cell1(abc)" in str(error) and "s3cret" not in str(error)
    assert str(error).endswith(": RuntimeError: cannot reach mysql+pymysql://nova:****@db1/nova")
