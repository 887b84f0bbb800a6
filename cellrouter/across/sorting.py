"""Sort specs for cross-cell lists: one total order, the same in every database and in Python.

Each cell sorts its rows in SQL and the lister merges the cells' rows in
Python, so all of them must agree on the order:

* NULL is the smallest value. SQLite and MariaDB do this natively;
  PostgreSQL needs ``NULLS FIRST`` ascending and ``NULLS LAST`` descending.
* Strings compare by code point, like Python: binary collations (MariaDB
  ``utf8mb4_nopad_bin`` - plain ``utf8mb4_bin`` pads trailing spaces, so
  ``'a' = 'a '`` there -, MySQL ``utf8mb4_0900_bin``, PostgreSQL ``"C"``,
  SQLite's default BINARY). On MySQL/MariaDB the value is first converted to
  utf8mb4, so a cell whose tables are utf8mb3 or latin1 (old Nova defaults)
  sorts the same and accepts the collation.
* The unique key (uuid) is always the last key, so the order is total and a
  marker row is an exact position: "rows after the marker" is a keyset
  condition every cell can evaluate, NULL-aware. Like Nova's
  ``InstanceSortContext``, an appended uuid is always ascending, whatever the
  direction of the other keys (a uuid the caller sorts on keeps its direction).

An expression of ``None`` in the functions below stands for a column a source
does not have (e.g. an API-database mapping standing in for an instance row):
its value is NULL in every row.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from cellrouter import exception

__all__ = [
    "SortSpec",
    "after_marker",
    "build_sort_spec",
    "merge_key_function",
    "merge_order",
    "order_by",
    "sortable",
    "values_getter",
]

_DIRECTIONS = {"asc": False, "desc": True}
#: The direction of an appended unique key: always ascending, as in Nova.
_UNIQUE_KEY_DIR = "asc"
#: Types whose database order is not Python's (prefix-sorted blobs, documents).
_UNSORTABLE_TYPES = (sa.Text, sa.LargeBinary, sa.JSON, sa.PickleType, sa.ARRAY)


@dataclasses.dataclass(frozen=True, slots=True)
class SortSpec:
    """Validated sort keys and their directions, unique key last."""

    keys: tuple[str, ...]
    descending: tuple[bool, ...]

    @property
    def dirs(self) -> tuple[str, ...]:
        return tuple("desc" if desc else "asc" for desc in self.descending)

    @property
    def merge_key(self) -> Callable[[Sequence[Any]], Any]:
        """Python sort key of a row's sort values (see :func:`merge_key_function`)."""
        return merge_key_function(self.descending)

    @property
    def merge_order(self) -> tuple[Callable[[Sequence[Any]], Any], bool]:
        """(key, reverse) for :func:`heapq.merge` (see :func:`merge_order`)."""
        return merge_order(self.descending)


def build_sort_spec(
    table: sa.Table,
    sort_keys: Sequence[str] | None = None,
    sort_dirs: Sequence[str] | None = None,
    *,
    default_keys: Sequence[str] = ("created_at",),
    default_dir: str = "desc",
    unique_key: str = "uuid",
) -> SortSpec:
    """Validate ``sort_keys``/``sort_dirs`` against ``table``, the way Nova reads them.

    No keys: ``default_keys``. No directions: ``default_dir`` for every key;
    fewer directions than keys: the first direction for the rest. The unique
    key is appended ascending unless given (Nova appends ``uuid asc``). Raises
    :class:`~cellrouter.exception.InvalidSortKey` for unknown or unsortable
    columns, keys given twice, bad directions, or more directions than keys.
    """
    keys = list(sort_keys) if sort_keys else list(default_keys)
    dirs = [str(direction).lower() for direction in sort_dirs] if sort_dirs else []
    if len(dirs) > len(keys):
        raise exception.InvalidSortKey(
            key=", ".join(map(str, sort_dirs or ())), reason="more sort directions than sort keys"
        )
    for direction in dirs:
        if direction not in _DIRECTIONS:
            raise exception.InvalidSortKey(key=direction, reason="direction must be asc or desc")
    first = dirs[0] if dirs else default_dir.lower()
    dirs += [first] * (len(keys) - len(dirs))
    if unique_key not in keys:
        keys.append(unique_key)
        dirs.append(_UNIQUE_KEY_DIR)
    seen: set[str] = set()
    for key in keys:
        if not isinstance(key, str) or key not in table.c:
            raise exception.InvalidSortKey(key=key, reason=f"{table.name} has no such column")
        if key in seen:
            raise exception.InvalidSortKey(key=key, reason="given more than once")
        if isinstance(table.c[key].type, _UNSORTABLE_TYPES):
            raise exception.InvalidSortKey(key=key, reason="this column type cannot be sorted on")
        seen.add(key)
    return SortSpec(tuple(keys), tuple(_DIRECTIONS[direction] for direction in dirs))


# -- SQL -------------------------------------------------------------------------


class _Utf8mb4Binary(FunctionElement[Any]):
    """MySQL/MariaDB: a string compared by code point, whatever its column's charset.

    Renders ``CONVERT(expr USING utf8mb4) COLLATE <no-pad binary collation>``:
    a utf8mb4 collation is only valid on a utf8mb4 value (error 1253 on utf8mb3
    or latin1 columns), and every character of those charsets converts to the
    same code point in utf8mb4. Bound values compared with it take its collation.
    """

    inherit_cache = True

    def __init__(self, expr: sa.ColumnElement[Any]) -> None:
        super().__init__(expr)
        self.type = expr.type


@compiles(_Utf8mb4Binary, "mysql")
@compiles(_Utf8mb4Binary, "mariadb")
def _compile_utf8mb4_binary(element: _Utf8mb4Binary, compiler: SQLCompiler, **kw: Any) -> str:
    is_mariadb = getattr(compiler.dialect, "is_mariadb", False)
    collation = "utf8mb4_nopad_bin" if is_mariadb else "utf8mb4_0900_bin"
    return f"CONVERT({compiler.process(element.clauses, **kw)} USING utf8mb4) COLLATE {collation}"


def sortable(expr: sa.ColumnElement[Any], dialect: Dialect) -> sa.ColumnElement[Any]:
    """``expr`` as it must be compared: strings by code point (SQLite's default BINARY)."""
    if isinstance(expr.type, sa.String):
        if dialect.name == "postgresql":
            return expr.collate("C")
        if dialect.name in ("mysql", "mariadb"):
            return _Utf8mb4Binary(expr)
    return expr


def order_by(
    spec: SortSpec, exprs: Sequence[sa.ColumnElement[Any] | None], dialect: Dialect
) -> list[sa.ColumnElement[Any]]:
    """ORDER BY clauses for ``exprs`` (one per sort key) with NULLs smallest."""
    nulls_largest = dialect.name == "postgresql"
    clauses: list[sa.ColumnElement[Any]] = []
    for expr, desc in zip(exprs, spec.descending, strict=True):
        if expr is None:
            continue  # constant NULL: ordering by it is a no-op (and PostgreSQL rejects it)
        value = sortable(expr, dialect)
        clause = value.desc() if desc else value.asc()
        if nulls_largest:
            clause = clause.nulls_last() if desc else clause.nulls_first()
        clauses.append(clause)
    return clauses


def after_marker(
    spec: SortSpec,
    exprs: Sequence[sa.ColumnElement[Any] | None],
    values: Sequence[Any],
    dialect: Dialect,
) -> sa.ColumnElement[bool]:
    """The condition "the row sorts strictly after the row with sort ``values``".

    The keyset expansion ``k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`` with
    NULL as the smallest value: ascending, after NULL is ``IS NOT NULL``;
    descending, after ``v`` is ``< v OR IS NULL`` and nothing is after NULL.
    A value may be a bound parameter (not NULL), so one statement serves any
    marker with the same NULLs.
    """
    terms: list[sa.ColumnElement[bool]] = []
    equal_so_far: list[sa.ColumnElement[bool]] = []
    for expr, desc, value in zip(exprs, spec.descending, values, strict=True):
        after: sa.ColumnElement[bool] | bool
        equal: sa.ColumnElement[bool] | bool
        if expr is None:  # constant NULL: after v only descending with v not NULL
            after = desc and value is not None
            equal = value is None
        else:
            col = sortable(expr, dialect)
            if value is None:
                after = False if desc else col.is_not(None)
                equal = col.is_(None)
            else:
                after = sa.or_(col < value, col.is_(None)) if desc else col > value
                equal = col == value
        if after is True:
            terms.append(sa.and_(sa.true(), *equal_so_far))
        elif after is not False:
            terms.append(sa.and_(*equal_so_far, after))
        if equal is False:
            break
        if equal is not True:
            equal_so_far.append(equal)
    return sa.or_(*terms) if terms else sa.false()


# -- Python ------------------------------------------------------------------------


class _Desc:
    """Reverses the comparisons of the value it wraps (a descending run of keys)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return other.value < self.value

    def __gt__(self, other: _Desc) -> bool:
        return other.value > self.value

    def __le__(self, other: _Desc) -> bool:
        return other.value <= self.value

    def __ge__(self, other: _Desc) -> bool:
        return other.value >= self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"_Desc({self.value!r})"


@functools.cache
def merge_key_function(descending: tuple[bool, ...]) -> Callable[[Sequence[Any]], Any]:
    """A Python key for rows' sort values that orders them exactly like :func:`order_by`.

    Each value becomes ``(value is not None, value)`` (NULL smallest, never
    compared with a non-NULL); each run of consecutive descending keys is
    wrapped in one :class:`_Desc`, so the all-descending default costs one
    wrapper per row.
    """
    runs: list[tuple[bool, int, int]] = []
    for index, desc in enumerate(descending):
        if runs and runs[-1][0] == desc:
            runs[-1] = (desc, runs[-1][1], index + 1)
        else:
            runs.append((desc, index, index + 1))
    if len(runs) == 1:
        if runs[0][0]:
            return lambda values: _Desc([(v is not None, v) for v in values])
        return lambda values: [(v is not None, v) for v in values]

    def key(values: Sequence[Any]) -> Any:
        parts: list[Any] = []
        for desc, start, stop in runs:
            part = [(v is not None, v) for v in values[start:stop]]
            parts.append(_Desc(part) if desc else part)
        return parts

    return key


@functools.cache
def merge_order(descending: tuple[bool, ...]) -> tuple[Callable[[Sequence[Any]], Any], bool]:
    """(key, reverse) that order rows' sort values exactly like :func:`order_by`.

    The merge runs in the first key's direction (``reverse`` when it is
    descending) on plain tuples compared natively; only a key running the other
    way (e.g. the ``uuid asc`` appended to the default ``created_at desc``) is
    wrapped in :class:`_Desc`, so its Python-level comparison runs only when
    every key before it is equal.
    """
    reverse = descending[0]
    flipped = tuple(desc != reverse for desc in descending)
    if not any(flipped):
        return (lambda values: tuple([(v is not None, v) for v in values])), reverse

    def key(values: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            [
                _Desc((v is not None, v)) if flip else (v is not None, v)
                for v, flip in zip(values, flipped, strict=True)
            ]
        )

    return key, reverse


def values_getter(fields: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``row -> tuple of row[f] for f in fields`` (positions for Rows, names for dicts)."""
    if len(fields) == 1:
        field = fields[0]
        return lambda row: (row[field],)
    return itemgetter(*fields)
