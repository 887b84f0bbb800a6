"""Column types shared by both schema tiers, portable over SQLite, MariaDB, PostgreSQL."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = ["NAMING_CONVENTION", "DateTime", "LongText", "UUIDStr", "utcnow"]

#: Deterministic constraint names, so migrations and drift checks agree on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Microsecond timestamps everywhere (MariaDB's DATETIME drops them by default,
#: which would make cross-cell sort order differ from SQLite and PostgreSQL).
DateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

#: Large text: URLs with many hosts, serialized objects.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

UUIDStr = sa.String(36)


def utcnow() -> datetime.datetime:
    """Now, as the naive UTC timestamp every table stores."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
