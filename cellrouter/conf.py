"""Configuration: every option cellrouter reads, and how a service loads them.

``CONF`` is the library's own :class:`oslo_config.cfg.ConfigOpts`. An
embedding service that has its own ``ConfigOpts`` passes it to :func:`setup`;
from then on the library reads that object (see :func:`get_conf`).

Logging is the service's: oslo.log's options are registered on ``CONF`` only
by ``cellrouter-manage`` (:mod:`cellrouter.manage.cli_logging`), never on a
service's ``ConfigOpts``, and nothing here sets logging up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from oslo_config import cfg

__all__ = ["CONF", "get_conf", "list_opts", "on_setup", "setup"]

api_database_group = cfg.OptGroup(
    "api_database",
    title="API database",
    help="The API-level database: the cell, instance and host mapping index.",
)
api_database_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the API database. Leave unset in cell-level "
        "services: they must never reach the API database.",
    ),
]

database_group = cfg.OptGroup(
    "database",
    title="Cell database",
    help="The cell database of the cell this service lives in.",
)
database_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of this service's cell database. Also the source "
        "of the {scheme}, {username}, {password}... values that cell "
        "database URL templates are formatted with.",
    ),
]

default_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="oslo.messaging URL of this service's cell message queue. Also "
        "the source of the values cell transport URL templates are "
        "formatted with.",
    ),
]

cells_group = cfg.OptGroup(
    "cells",
    title="Cells",
    help="cellrouter's own knobs: scatter-gather, cell health, per-cell "
    "connection pools and cross-cell listing.",
)
cells_opts: list[cfg.Opt] = [
    cfg.FloatOpt(
        "scatter_timeout",
        default=60.0,
        min=0.0,
        help="Seconds a scatter-gather waits for each cell before reporting it as not responding.",
    ),
    cfg.FloatOpt(
        "cell_down_interval",
        default=30.0,
        min=0.0,
        help="Seconds a cell that timed out or failed to connect is treated "
        "as down: scatters skip it at once while a background probe checks "
        "whether it is back. 0 disables health tracking.",
    ),
    cfg.FloatOpt(
        "health_probe_timeout",
        default=5.0,
        min=0.1,
        help="Seconds the background probe of a down cell waits for its "
        "database before giving up until the next interval.",
    ),
    cfg.FloatOpt(
        "db_connect_timeout",
        default=5.0,
        min=0.1,
        help="Seconds to wait for a new database connection (TCP connect and "
        "handshake) on every engine cellrouter builds: API, cells and this "
        "service's own. PyMySQL connect_timeout, libpq connect_timeout "
        "(whole seconds, at least 2). A value in the URL's query wins.",
    ),
    cfg.FloatOpt(
        "db_query_timeout",
        default=30.0,
        min=0.0,
        help="Seconds one database round trip may take before the connection "
        "is given up as lost and the cell reported unavailable: PyMySQL "
        "read_timeout and write_timeout; PostgreSQL statement_timeout (server "
        "side) and tcp_user_timeout; SQLite's busy timeout. 0 disables it. "
        "Schema migrations run without it. A value in the URL's query wins.",
    ),
    cfg.IntOpt(
        "rpc_retry",
        default=1,
        min=0,
        help="Times a cast or call reconnects to a cell's message broker before "
        "it fails with CellUnavailable (oslo.messaging's retry; it otherwise "
        "retries forever). Each attempt is bounded by the driver's connection "
        "timeout (kombu: 4 s) plus oslo.messaging's retry interval.",
    ),
    cfg.FloatOpt(
        "rpc_send_timeout",
        default=15.0,
        min=0.1,
        help="Seconds a cast (or the sending part of a call) to a cell's queue "
        "may take before it fails with CellUnavailable and the queue is "
        "treated as down for cell_down_interval (casts to it then fail at "
        "once; the first one after the interval tries again). A publish "
        "waiting for a silent broker's confirm otherwise blocks for as long "
        "as the socket allows.",
    ),
    cfg.IntOpt(
        "db_pool_size",
        default=4,
        min=0,
        help="Connections kept open per cell database and process. Small by "
        "default: a process talks to many cells.",
    ),
    cfg.IntOpt(
        "db_max_overflow",
        default=8,
        min=-1,
        help="Extra connections a cell database may open under load (-1: no limit).",
    ),
    cfg.IntOpt(
        "db_pool_recycle",
        default=3600,
        min=-1,
        help="Seconds after which a pooled cell connection is replaced (-1: never).",
    ),
    cfg.FloatOpt(
        "db_pool_timeout",
        default=10.0,
        min=0.0,
        help="Seconds to wait for a free pooled connection.",
    ),
    cfg.BoolOpt(
        "db_pool_pre_ping",
        default=True,
        help="Test each pooled connection on checkout, so a restarted cell "
        "database costs one reconnect instead of one failed request.",
    ),
    cfg.StrOpt(
        "list_batch_strategy",
        default="distributed",
        choices=[
            (
                "distributed",
                "Split the requested limit across the cells: by their "
                "instance counts plus a statistical margin (see "
                "list_cells_by_mappings), else evenly plus 10%.",
            ),
            ("fixed", "Ask every cell for list_batch_size rows at a time."),
        ],
        help="How many rows a cross-cell list asks each cell for at once.",
    ),
    cfg.IntOpt(
        "list_batch_size",
        default=100,
        min=10,
        help="Rows per cell and batch for the 'fixed' strategy; the lower "
        "bound for the 'distributed' one when the cells' sizes are unknown.",
    ),
    cfg.BoolOpt(
        "list_records_by_skipping_down_cells",
        default=True,
        help="When a cell is down, list the other cells and flag the result "
        "partial (True) or fail the whole list (False).",
    ),
    cfg.FloatOpt(
        "refresh_interval",
        default=1.0,
        min=0.0,
        help="Seconds between checks of the API database's cell generation "
        "(one tiny query): when another process created, changed or deleted "
        "a cell, the cell list is reloaded and the changed cells' connections "
        "are replaced. 0 checks on every use of the cell list.",
    ),
    cfg.BoolOpt(
        "instance_list_per_project_cells",
        default=False,
        help="A project-scoped list queries only the cells where the project has instances.",
    ),
    cfg.BoolOpt(
        "list_cells_by_mappings",
        default=False,
        help="A cross-cell instance list sizes each cell's share of a page by "
        "the cell's instance mappings (counts cached for 30 s; for a page in "
        "creation order, the cell's mappings among the page's) and does not "
        "query the cells that hold no matching mapped instance, such as an "
        "empty cell0 or the cells without the filtered project's instances "
        "(one indexed query on the API database per page tells them): one "
        "round trip per non-empty cell. An instance whose row is in a cell but "
        "whose mapping does not point there yet (created outside cellrouter and "
        "not yet mapped by map_instances, or between a conductor's two steps) "
        "is then not listed, as with instance_list_per_project_cells. False "
        "(default, as Nova): every cell is queried and the page split evenly.",
    ),
    cfg.IntOpt(
        "max_worker_threads",
        default=64,
        min=1,
        help="Most threads cellrouter runs background jobs on (scatter-gather "
        "cell queries, health probes, bounded RPC sends), whatever the number "
        "of cells: further jobs wait in line for a free thread, and a cell "
        "whose query did not start before a scatter's timeout is reported as "
        "not responding without being marked down.",
    ),
    cfg.IntOpt(
        "max_cell_connections",
        default=128,
        min=1,
        help="Most open cell database connections per process, all cells "
        "together. When a new one is needed at the cap, the pooled "
        "connections of the least recently used idle cells are closed (their "
        "pools are rebuilt on demand); when none is idle, the request waits up "
        "to db_pool_timeout for one and then fails with CellUnavailable.",
    ),
]

cache_group = cfg.OptGroup(
    "cache",
    title="Mapping cache",
    help="The dogpile.cache region in front of the API database's instance -> "
    "cell and host -> cell lookups. Every mapping write made through "
    "cellrouter invalidates what it changed; a memcached or Redis backend "
    "shares the cache (and its invalidations) between processes.",
)
cache_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "backend",
        default="memory",
        help="Where lookups are cached: 'memory' (this process only), "
        "'memcached' (pymemcache), 'redis', 'null' (no cache), or any "
        "dogpile.cache backend name such as 'dogpile.cache.redis'. Services "
        "running several processes that write mappings should share "
        "memcached or Redis: a memory cache hears only its own process's "
        "writes (other processes' changes are then seen after "
        "expiration_time, or at once for a move detected on use).",
    ),
    cfg.IntOpt(
        "expiration_time",
        default=600,
        min=1,
        help="Seconds a cached lookup is trusted.",
    ),
    cfg.StrOpt(
        "key_prefix",
        default="cellrouter:",
        help="Prefix of every cache key, so deployments can share one server.",
    ),
    cfg.MultiStrOpt(
        "backend_argument",
        default=[],
        secret=True,
        help="Arguments for the backend, 'name:value', repeatable; e.g. "
        "'url:127.0.0.1:11211' for memcached or 'url:redis://127.0.0.1:6379/0' "
        "for Redis (the default when none is given: localhost's standard port).",
    ),
    cfg.FloatOpt(
        "timeout",
        default=0.5,
        min=0.01,
        help="Seconds a memcached or Redis operation (and connecting) may "
        "take before the cache is treated as down.",
    ),
    cfg.FloatOpt(
        "retry_interval",
        default=5.0,
        min=0.0,
        help="Seconds lookups go straight to the API database after the cache "
        "backend failed, before it is tried again.",
    ),
]

scheduler_group = cfg.OptGroup("scheduler", title="Scheduler")
scheduler_opts: list[cfg.Opt] = [
    cfg.IntOpt(
        "discover_hosts_in_cells_interval",
        default=-1,
        min=-1,
        help="Seconds between periodic host discovery runs in a scheduler "
        "that starts it (-1: off).",
    ),
]

_GROUPED_OPTS: list[tuple[cfg.OptGroup | None, list[cfg.Opt]]] = [
    (None, default_opts),
    (api_database_group, api_database_opts),
    (database_group, database_opts),
    (cells_group, cells_opts),
    (cache_group, cache_opts),
    (scheduler_group, scheduler_opts),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every cellrouter option on ``conf`` (idempotent).

    Each ``ConfigOpts`` gets its own OptGroup objects: oslo.config keeps
    values and overrides inside the group object, so sharing one between the
    library's CONF and a service's would share their settings.
    """
    for group, opts in _GROUPED_OPTS:
        name = None
        if group is not None:
            name = group.name
            if name not in conf:
                conf.register_group(cfg.OptGroup(name, title=group.title, help=group.help))
        conf.register_opts(opts, group=name)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for ``oslo-config-generator`` (entry point ``oslo.config.opts``)."""
    return [
        (group.name if group is not None else "DEFAULT", list(opts))
        for group, opts in _GROUPED_OPTS
    ]


CONF = cfg.ConfigOpts()
register_opts(CONF)

_active: cfg.ConfigOpts = CONF


def get_conf() -> cfg.ConfigOpts:
    """The ``ConfigOpts`` the library reads: ``CONF`` or the one given to setup()."""
    return _active


def setup(
    argv: Sequence[str] | None = None,
    conf: cfg.ConfigOpts | None = None,
    default_config_files: Sequence[str] | None = None,
) -> cfg.ConfigOpts:
    """Load configuration from ``argv`` (``--config-file``/``--config-dir``).

    Safe to call repeatedly. With ``conf`` the options are registered on the
    caller's object, which becomes the one the library reads; it is parsed only
    if ``argv`` is given (an embedding service usually parsed it already).
    Connection pools built from an earlier configuration are released.

    The configured ``[api_database]/connection``, ``[database]/connection`` and
    ``[DEFAULT]/transport_url`` must be well-formed URLs
    (:func:`~cellrouter.url.check_url`, syntax only: nothing is imported or
    connected); otherwise :class:`~cellrouter.exception.ConfigurationError`
    names the option, with the URL masked. (The runtime's setup hook also
    checks ``[cache]/backend``.)
    """
    global _active
    target = conf if conf is not None else CONF
    register_opts(target)
    if conf is None or argv is not None:
        target(
            args=list(argv or []),
            project="cellrouter",
            default_config_files=(
                list(default_config_files) if default_config_files is not None else None
            ),
        )
    _active = target
    for hook in _on_setup:
        hook()
    _check_urls(target)
    return target


#: Run after every setup(): the runtime releases state built from the old
#: configuration (see :mod:`cellrouter.runtime`; conf itself imports nothing of it).
_on_setup: list[Callable[[], None]] = []


def on_setup(hook: Callable[[], None]) -> None:
    """Call ``hook()`` after every :func:`setup` (once per hook)."""
    if hook not in _on_setup:
        _on_setup.append(hook)


def _check_urls(conf: cfg.ConfigOpts) -> None:
    """Raise ConfigurationError naming the first configured URL option that is malformed."""
    from cellrouter import exception
    from cellrouter.url import check_url

    for option, kind, value in (
        ("[api_database]/connection", "database", conf.api_database.connection),
        ("[database]/connection", "database", conf.database.connection),
        ("[DEFAULT]/transport_url", "transport", conf.transport_url),
    ):
        if value:
            try:
                check_url(value, kind)
            except exception.InvalidURL as exc:
                raise exception.ConfigurationError(reason=f"{option}: {exc}") from None
