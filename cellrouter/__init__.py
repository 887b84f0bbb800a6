"""cellrouter: cells v2 sharding for API services.

An index in the API database maps each cell to its (database, queue), each
instance and compute host to its cell; :func:`target_cell` hands out the
cell's pooled engine and transport. The names below are the public surface,
enough to build an API, a super conductor and a cell's compute agent on; the
modules they come from hold the rest of each concept.
"""

from __future__ import annotations

import importlib
from typing import Any

from cellrouter import exception
from cellrouter.across.health import CellHealth, cell_health
from cellrouter.across.instance_list import list_instances
from cellrouter.across.lister import ListResult
from cellrouter.across.scatter import (
    Sentinel,
    did_not_respond_sentinel,
    is_cell_failure,
    scatter_gather_all_cells,
    scatter_gather_cells,
    scatter_gather_single_cell,
    scatter_gather_skip_cell0,
)
from cellrouter.cells.compute_node import (
    ComputeNode,
    add_compute_usage,
    get_compute_nodes,
    register_compute_node,
)
from cellrouter.cells.context import RequestContext, get_admin_context, set_target_cell, target_cell
from cellrouter.cells.instance import (
    create_instance,
    destroy_instance,
    get_instance,
    update_instance,
)
from cellrouter.cells.instance_fault import get_instance_faults, record_instance_fault
from cellrouter.cells.routing import Route, call_instance, cast_instance, route_instance
from cellrouter.conf import CONF
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cache_stats import CacheStats
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.runtime import cache_stats, reload, reload_on_sighup, setup
from cellrouter.url import mask_url

__all__ = [
    "CELL0_UUID",
    "CONF",
    "BuildRequest",
    "CacheStats",
    "CellHealth",
    "CellMapping",
    "ComputeNode",
    "DiscoveryResult",
    "HostMapping",
    "InstanceMapping",
    "ListResult",
    "PeriodicDiscovery",
    "RequestContext",
    "Route",
    "Sentinel",
    "add_compute_usage",
    "cache_stats",
    "call_instance",
    "cast_instance",
    "cell_health",
    "command",
    "create_instance",
    "destroy_instance",
    "did_not_respond_sentinel",
    "exception",
    "get_admin_context",
    "get_compute_nodes",
    "get_instance",
    "get_instance_faults",
    "is_cell_failure",
    "list_instances",
    "mask_url",
    "record_instance_fault",
    "reload",
    "reload_on_sighup",
    "register_compute_node",
    "route_instance",
    "scatter_gather_all_cells",
    "scatter_gather_cells",
    "scatter_gather_single_cell",
    "scatter_gather_skip_cell0",
    "schema_head",
    "schema_version",
    "set_target_cell",
    "setup",
    "start_periodic_discovery",
    "sync_schema",
    "target_cell",
    "update_instance",
]

#: Names imported on first use: the operator verbs, and alembic behind the schema
#: functions, cost most of an import a request path never needs.
_LAZY = {
    "schema_head": ("cellrouter.db.migration", "head"),
    "schema_version": ("cellrouter.db.migration", "version"),
    "sync_schema": ("cellrouter.db.migration", "sync"),
    "command": ("cellrouter.manage.commands", None),
    "start_periodic_discovery": ("cellrouter.manage.discovery", "start_periodic_discovery"),
    "PeriodicDiscovery": ("cellrouter.manage.discovery", "PeriodicDiscovery"),
    "DiscoveryResult": ("cellrouter.manage.discovery", "DiscoveryResult"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cellrouter' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
