"""cellrouter: cells v2 sharding for API services.

An index in the API database maps each cell to its (database, queue), each
instance and compute host to its cell; :func:`target_cell` hands out the
cell's pooled engine and transport. The names below are the public surface;
the modules they come from hold the rest of each concept.
"""

from cellrouter import exception
from cellrouter.across.health import cell_health
from cellrouter.across.instance_list import list_instances
from cellrouter.across.scatter import (
    did_not_respond_sentinel,
    is_cell_failure,
    scatter_gather_all_cells,
    scatter_gather_cells,
    scatter_gather_single_cell,
    scatter_gather_skip_cell0,
)
from cellrouter.cells.context import RequestContext, get_admin_context, set_target_cell, target_cell
from cellrouter.cells.routing import Route, call_instance, cast_instance, route_instance
from cellrouter.conf import CONF
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CELL0_UUID, CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.runtime import setup
from cellrouter.url import mask_url

__all__ = [
    "CELL0_UUID",
    "CONF",
    "BuildRequest",
    "CellMapping",
    "HostMapping",
    "InstanceMapping",
    "RequestContext",
    "Route",
    "call_instance",
    "cast_instance",
    "cell_health",
    "did_not_respond_sentinel",
    "exception",
    "get_admin_context",
    "is_cell_failure",
    "list_instances",
    "mask_url",
    "route_instance",
    "scatter_gather_all_cells",
    "scatter_gather_cells",
    "scatter_gather_single_cell",
    "scatter_gather_skip_cell0",
    "set_target_cell",
    "setup",
    "target_cell",
]
