"""Schema migrations of both tiers (alembic), as plain functions.

``api`` is the API database (``migrations_api``), ``cell`` every cell
database including cell0 (``migrations_cell``). Each tier keeps its own
version table, so one database may hold both during development. Alembic is
not thread-safe: callers migrate one database at a time.
"""

from __future__ import annotations

import importlib.resources
import logging
from typing import Literal

import sqlalchemy as sa
from alembic import command as alembic_command
from alembic import util as alembic_util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cellrouter import exception
from cellrouter.db import api_schema, cell_schema
from cellrouter.db.engine import Unavailable, create_engine

__all__ = ["Tier", "current", "downgrade", "head", "revisions", "run_env", "sync", "version"]

LOG = logging.getLogger(__name__)

Tier = Literal["api", "cell"]

_VERSION_TABLES: dict[str, str] = {"api": "alembic_version_api", "cell": "alembic_version_cell"}
_METADATA: dict[str, sa.MetaData] = {"api": api_schema.metadata, "cell": cell_schema.metadata}


def _check_tier(tier: str) -> None:
    if tier not in _VERSION_TABLES:
        raise exception.InvalidValue(what="schema tier", reason=f"{tier!r} (api or cell)")


def _alembic_config(tier: str, connection: sa.Connection | None = None) -> Config:
    _check_tier(tier)
    location = importlib.resources.files(f"cellrouter.migrations_{tier}")
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.attributes["tier"] = tier
    cfg.attributes["connection"] = connection
    return cfg


def run_env(tier: str) -> None:
    """Body of both trees' ``env.py``: migrate the connection we were handed.

    A bare ``alembic`` command hands none: ConfigurationError, since only
    :func:`sync` knows the version table and transaction rules of a tier.
    """
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise exception.ConfigurationError(
            reason=f"the {tier} schema migrations run through cellrouter.db.migration.sync() "
            "only: alembic was handed no database connection"
        )
    context.configure(
        connection=connection,
        target_metadata=_METADATA[tier],
        version_table=_VERSION_TABLES[tier],
        render_as_batch=True,
        compare_type=True,
        transactional_ddl=connection.dialect.name != "mysql",
    )
    with context.begin_transaction():
        context.run_migrations()


def _script(tier: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config(tier))


def _current(tier: str, connection: sa.Connection) -> str | None:
    ctx = MigrationContext.configure(connection, opts={"version_table": _VERSION_TABLES[tier]})
    return ctx.get_current_revision()


def current(tier: Tier, connection: sa.Connection) -> str | None:
    """The revision ``tier``'s schema is at, read on an open ``connection`` (None: not
    initialised); for callers that read more than the revision on one connection."""
    _check_tier(tier)
    return _current(tier, connection)


def version(tier: Tier, url: str, unavailable: Unavailable | None = None) -> str | None:
    """The revision ``url``'s ``tier`` schema is at (None: not initialised).

    ``unavailable``: see :func:`cellrouter.db.engine.create_engine`.
    """
    _check_tier(tier)
    engine = create_engine(url, pooled=False, unavailable=unavailable)
    try:
        with engine.connect() as conn:
            return _current(tier, conn)
    finally:
        engine.dispose()


def head(tier: Tier) -> str:
    """The newest revision of ``tier``."""
    return _script(tier).get_current_head() or "base"


def revisions(tier: Tier) -> frozenset[str]:
    """Every revision of ``tier`` this code knows."""
    return frozenset(rev.revision for rev in _script(tier).walk_revisions())


def sync(
    tier: Tier,
    url: str,
    revision: str | None = None,
    unavailable: Unavailable | None = None,
) -> tuple[str | None, str | None]:
    """Bring ``url``'s ``tier`` schema to ``revision`` (default: head).

    A revision older than the current one downgrades. Returns (before, after).
    ``unavailable``: see :func:`cellrouter.db.engine.create_engine`.
    """
    _check_tier(tier)
    target = revision or "head"
    script = _script(tier)
    if target not in ("head", "heads", "base"):
        _check_revision(tier, script, target)
    # DDL may take long: only connecting is bounded
    engine = create_engine(url, pooled=False, bound_queries=False, unavailable=unavailable)
    try:
        with engine.begin() as conn:
            before = _current(tier, conn)
            cfg = _alembic_config(tier, conn)
            if target == "base" or (
                before is not None
                and target not in ("head", "heads")
                and _is_ancestor(script, target, before)
            ):
                alembic_command.downgrade(cfg, target)
            else:
                alembic_command.upgrade(cfg, target)
            after = _current(tier, conn)
    finally:
        engine.dispose()
    LOG.info("%s schema: %s -> %s", tier, before or "base", after or "base")
    return before, after


def _check_revision(tier: str, script: ScriptDirectory, revision: str) -> None:
    try:
        found = script.get_revision(revision)
    except alembic_util.CommandError:
        found = None
    if found is None:
        known = ", ".join(rev.revision for rev in script.walk_revisions())
        raise exception.UnknownRevision(tier=tier, revision=revision, known=known or "none")


def downgrade(tier: Tier, url: str, revision: str = "base") -> tuple[str | None, str | None]:
    """Take ``url``'s ``tier`` schema back to ``revision`` (default: empty)."""
    return sync(tier, url, revision)


def _is_ancestor(script: ScriptDirectory, older: str, newer: str) -> bool:
    if older == newer:
        return False
    return any(rev.revision == older for rev in script.iterate_revisions(newer, "base"))
