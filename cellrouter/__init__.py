"""cellrouter: cells v2 sharding for API services.

An index in the API database maps each cell to its (database, queue), each
instance and compute host to its cell; :func:`target_cell` hands out the
cell's pooled engine and transport. The names below are the public surface;
the modules they come from hold the rest of each concept.
"""

from cellrouter import exception
from cellrouter.build_request import BuildRequest
from cellrouter.cell_mapping import CELL0_UUID, CellMapping
from cellrouter.conf import CONF, setup
from cellrouter.context import RequestContext, get_admin_context, set_target_cell, target_cell
from cellrouter.host_mapping import HostMapping
from cellrouter.instance_mapping import InstanceMapping
from cellrouter.routing import Route, call_instance, cast_instance, route_instance
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
    "exception",
    "get_admin_context",
    "mask_url",
    "route_instance",
    "set_target_cell",
    "setup",
    "target_cell",
]
