"""The reference API: a JSON WSGI application (Flask) on the public ``cellrouter`` names.

Endpoints:

* ``POST /servers`` ``{"name", "flavor", "project"}``: a build request and an
  instance mapping with no cell, then a cast to the super conductor (202);
  ``project`` defaults to the caller's, and only an admin may name another;
* ``GET /servers/<id>``: resolved through the instance mapping; while the
  instance is building, from its build request; a cell that is down: 503;
* ``GET /servers``: the cross-cell list (``limit``, ``marker``, repeatable
  ``sort_key``/``sort_dir``, ``project_id``, ``all_tenants``,
  ``down_cell_records``); the answer names the cells that did not answer;
* ``DELETE /servers/<id>``: 204;
* ``GET /cells`` (admin): every cell's health, counts and masked URLs;
* ``GET /`` (admin): the same as a small HTML page for operators.

Errors are JSON ``{"error": {"code", "message"}}``; a cellrouter error gets
its status from its base (:func:`status_for`): NotFound 404, Invalid 400,
Conflict 409, Unavailable 503. Bad input is a 400, never a 500.

The caller: :func:`request_context` builds the request's
:class:`cellrouter.RequestContext` from keystonemiddleware's headers
(``X-User-Id``, ``X-Project-Id``, ``X-Roles``; :mod:`cellrouter.reference.auth`,
``[reference_api]/auth_strategy``); every handler gets it from there
(``flask.g.ctx``). No project: 401. Every request is scoped to its project,
as Nova's API is by its default policy:

* a non-admin lists only its project: ``project_id`` is ignored (Nova drops
  the filters a non-admin may not use) and ``all_tenants`` is 403; the list
  pushes the project into every cell's query and asks only the cells where
  the project has instances (``CellMapping.get_by_project``);
* another project's server answers a show or a delete exactly as a server
  that does not exist (404, same message), and as a list marker exactly as an
  unknown marker (400), so existence does not leak; nothing is written;
* ``GET /cells`` and ``GET /`` need the admin role (403);
* an admin (role ``admin``) sees every project (``all_tenants=false``: its
  own), filters by ``project_id`` and may boot into another project.

Process: API-level, like Nova's. ``[api_database]/connection`` is the mapping
index; ``[database]/connection`` is cell0's and ``[DEFAULT]/transport_url``
the API-level queue the super conductor listens on.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

import flask
from werkzeug.exceptions import Forbidden, HTTPException

import cellrouter
from cellrouter import exception
from cellrouter.reference.auth import HEADERS, Auth
from cellrouter.reference.conductor import CONDUCTOR_TOPIC
from cellrouter.reference.flavors import FLAVORS, get_flavor

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SORT_KEYS",
    "create_app",
    "main",
    "request_context",
    "status_for",
]

LOG = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: what a list may be sorted on (instance columns)
SORT_KEYS = (
    "created_at",
    "updated_at",
    "launched_at",
    "display_name",
    "uuid",
    "vm_state",
    "task_state",
    "host",
    "project_id",
    "user_id",
)
_LIST_PARAMS = frozenset(
    {"limit", "marker", "sort_key", "sort_dir", "project_id", "all_tenants", "down_cell_records"}
)
_LIST_COLUMNS = (
    "uuid",
    "display_name",
    "vm_state",
    "task_state",
    "project_id",
    "user_id",
    "host",
    "key_name",
    "created_at",
    "updated_at",
)
_NAME_LENGTH = 255
_STATUS = {"building": "BUILD", "active": "ACTIVE", "error": "ERROR", "deleted": "DELETED"}


def _bad(reason: str) -> exception.InvalidValue:
    """A malformed request: HTTP 400 like every Invalid."""
    return exception.InvalidValue(f"Invalid request: {reason}")


def status_for(error: exception.CellRouterError) -> int:
    """The HTTP status of a cellrouter error, by its base (500: not the caller's fault)."""
    for base, status in (
        (exception.NotFound, 404),
        (exception.Invalid, 400),
        (exception.Conflict, 409),
        (exception.Unavailable, 503),
    ):
        if isinstance(error, base):
            return status
    return 500


def request_context(auth: Auth) -> cellrouter.RequestContext:
    """The caller of this request, from keystonemiddleware's headers (or ``auth``'s noauth
    caller); 401 without a project. ``is_admin``: the caller has the admin role."""
    headers = flask.request.headers
    found = {name: headers[name] for name in HEADERS if name in headers}
    return auth.caller(found, request_id=headers.get("X-Openstack-Request-Id") or None)


def _require_admin(ctx: cellrouter.RequestContext, what: str) -> None:
    if not ctx.is_admin:
        raise Forbidden(f"{what} requires the admin role.")


def _mapping(ctx: cellrouter.RequestContext, instance_uuid: str) -> cellrouter.InstanceMapping:
    """The server's instance mapping, if the caller may see it.

    Another project's server raises exactly what a server with no mapping
    raises (404, the same message): a non-admin cannot tell the two apart.
    """
    mapping = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
    if not ctx.is_admin and mapping.project_id != ctx.project_id:
        raise exception.InstanceMappingNotFound(uuid=instance_uuid)
    return mapping


def _uuid(value: str, what: str = "server id") -> str:
    try:
        parsed = uuidlib.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise _bad(f"{what} {value!r} is not a UUID") from None
    if str(parsed) != value.lower():
        raise _bad(f"{what} {value!r} is not a UUID in canonical form")
    return str(parsed)


def _gone(instance_uuid: str) -> exception.InstanceNotFound:
    """A server that was deleted (or never finished being accepted): 404."""
    return exception.InstanceNotFound(f"Server {instance_uuid} not found.", uuid=instance_uuid)


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _status(row: dict[str, Any]) -> str:
    if row.get("status"):  # a down-cell record says UNKNOWN itself
        return str(row["status"])
    if row.get("task_state") == "deleting":
        return "DELETING"
    return _STATUS.get(row.get("vm_state") or "", "UNKNOWN")


def _server(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("uuid"),
        "name": row.get("display_name"),
        "status": _status(row),
        "flavor": row.get("key_name"),
        "project_id": row.get("project_id"),
        "user_id": row.get("user_id"),
        "host": row.get("host"),
        "created": _iso(row.get("created_at")),
        "updated": _iso(row.get("updated_at")),
    }


def _cell_ref(cell: cellrouter.CellMapping) -> dict[str, Any]:
    return {"uuid": cell.uuid, "name": cell.name}


# -- handlers ------------------------------------------------------------------


def create_server() -> tuple[Any, int]:
    ctx: cellrouter.RequestContext = flask.g.ctx
    body = flask.request.get_json(silent=True)
    if body is None:
        raise _bad("the body must be a JSON object (Content-Type: application/json)")
    if isinstance(body, dict) and isinstance(body.get("server"), dict):
        body = body["server"]
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    unknown = sorted(set(body) - {"name", "flavor", "project"})
    if unknown:
        raise _bad(f"unknown field(s): {', '.join(unknown)}")
    name, project = body.get("name"), body.get("project") or ctx.project_id
    if not isinstance(name, str) or not name.strip() or len(name) > _NAME_LENGTH:
        raise _bad(f"name must be a non-empty string of at most {_NAME_LENGTH}")
    if not isinstance(project, str) or not project.strip() or len(project) > _NAME_LENGTH:
        raise _bad("project must be a non-empty string")
    if project != ctx.project_id:
        _require_admin(ctx, "Booting a server in another project")
    flavor = get_flavor(body.get("flavor"))
    instance_uuid = str(uuidlib.uuid4())
    spec = {
        "display_name": name,
        "flavor": flavor.to_dict(),
        "project_id": project,
        "user_id": ctx.user_id,
    }
    # build request first: a crash before the mapping leaves only a build
    # request with no mapping, which the conductor drops (the boot got no 202)
    request = cellrouter.BuildRequest.create(
        ctx, instance_uuid=instance_uuid, project_id=project, instance=json.dumps(spec)
    )
    cellrouter.InstanceMapping.create(
        ctx, instance_uuid=instance_uuid, project_id=project, user_id=ctx.user_id
    )
    try:
        ctx.rpc_client(CONDUCTOR_TOPIC).cast(
            ctx.to_dict(), "schedule_and_build", instance_uuid=instance_uuid
        )
    except exception.Unavailable as exc:  # the conductor's sweep builds it anyway
        LOG.warning("Cast to the conductor failed, left to its sweep: %s", exc)
    server = {
        "id": instance_uuid,
        "name": name,
        "status": "BUILD",
        "flavor": flavor.name,
        "project_id": project,
        "user_id": ctx.user_id,
        "host": None,
        "created": _iso(request.created_at),
        "updated": None,
    }
    return {"server": server}, 202


def show_server(server_id: str) -> dict[str, Any]:
    ctx: cellrouter.RequestContext = flask.g.ctx
    instance_uuid = _uuid(server_id)
    for _ in range(3):  # a build finishing under us moves it from build request to cell
        mapping = _mapping(ctx, instance_uuid)
        if mapping.queued_for_delete:
            raise _gone(instance_uuid)
        cell = mapping.cell_mapping
        if cell is None:
            try:
                request = cellrouter.BuildRequest.get_by_instance_uuid(ctx, instance_uuid)
            except exception.BuildRequestNotFound:
                continue
            spec = json.loads(request.instance or "{}")
            return {
                "server": {
                    "id": instance_uuid,
                    "name": spec.get("display_name"),
                    "status": "BUILD",
                    "flavor": (spec.get("flavor") or {}).get("name"),
                    "project_id": request.project_id,
                    "user_id": spec.get("user_id"),
                    "host": None,
                    "created": _iso(request.created_at),
                    "updated": None,
                    "cell": None,
                }
            }
        with cellrouter.target_cell(ctx, cell) as cctx:
            row = dict(cellrouter.get_instance(cctx, instance_uuid, columns=_LIST_COLUMNS))
            faults = (
                cellrouter.get_instance_faults(cctx, instance_uuid, limit=1)
                if row["vm_state"] == "error"
                else []
            )
        server = _server(row) | {"cell": _cell_ref(cell)}
        if faults:
            fault = faults[0]
            server["fault"] = {
                "code": fault["code"],
                "message": fault["message"],
                "created": _iso(fault["created_at"]),
            }
        return {"server": server}
    raise _gone(instance_uuid)


def _limit(args: Any) -> int:
    text = args.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 0 <= int(text) <= MAX_LIMIT:
        raise _bad(f"limit must be a whole number from 0 to {MAX_LIMIT}, not {text!r}")
    return int(text)


def _flag(args: Any, name: str, empty: str | None = None) -> bool:
    """A true/false parameter (absent: false; given empty: ``empty``, if allowed)."""
    text = args.get(name, "false").lower()
    if not text and empty is not None:
        text = empty
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise _bad(f"{name} must be true or false, not {text!r}")
    return text in ("true", "1", "yes")


def _scope(ctx: cellrouter.RequestContext, args: Any) -> str | None:
    """The project the list is restricted to (None: every project), as Nova decides it.

    A non-admin: its own project whatever ``project_id`` says (ignored, as Nova
    drops filters a non-admin may not use); ``all_tenants`` true is 403. An
    admin: ``project_id`` if given, else every project (``all_tenants=false``:
    its own).
    """
    project = args.get("project_id")
    if project is not None and not project:
        raise _bad("project_id must not be empty")
    # Nova: a bare ``all_tenants`` (empty value) means true
    all_tenants = _flag(args, "all_tenants", empty="true") if "all_tenants" in args else None
    if not ctx.is_admin:
        if all_tenants:
            _require_admin(ctx, "Listing the servers of all projects")
        if project is not None and project != ctx.project_id:
            LOG.debug("Ignoring project_id=%s of a non-admin caller", project)
        return ctx.project_id
    if project is not None:
        return str(project)
    return ctx.project_id if all_tenants is False else None


def _check_marker(ctx: cellrouter.RequestContext, marker: str) -> None:
    """An unknown marker, or one of a server the caller may not see: the same 400."""
    try:
        _mapping(ctx, marker)
    except exception.InstanceMappingNotFound:
        raise exception.InvalidMarker(marker=marker) from None


def list_servers() -> dict[str, Any]:
    ctx: cellrouter.RequestContext = flask.g.ctx
    args = flask.request.args
    unknown = sorted(set(args) - _LIST_PARAMS)
    if unknown:
        raise _bad(f"unknown parameter(s): {', '.join(unknown)}")
    for name in ("limit", "marker", "project_id", "all_tenants", "down_cell_records"):
        if len(args.getlist(name)) > 1:
            raise _bad(f"{name} may be given once")
    limit = _limit(args)
    project = _scope(ctx, args)
    marker = args.get("marker")
    if marker is not None:
        marker = _uuid(marker, "marker")
        _check_marker(ctx, marker)
    sort_keys = args.getlist("sort_key")
    sort_dirs = args.getlist("sort_dir")
    bad = [key for key in sort_keys if key not in SORT_KEYS]
    if bad:
        raise exception.InvalidSortKey(
            key=bad[0], reason=f"sortable keys are {', '.join(SORT_KEYS)}"
        )
    if len(set(sort_keys)) != len(sort_keys):
        raise _bad("a sort_key may be given once")
    wrong = [d for d in sort_dirs if d not in ("asc", "desc")]
    if wrong:
        raise _bad(f"sort_dir must be asc or desc, not {wrong[0]!r}")
    if len(sort_dirs) > max(len(sort_keys), 1):
        raise _bad("more sort_dir than sort_key values")
    down_records = _flag(args, "down_cell_records")
    # a project's list: the filter goes into every cell's query, and only the
    # cells where the project has instances are asked (CellMapping.get_by_project)
    page = cellrouter.list_instances(
        ctx,
        sort_keys=sort_keys or None,
        sort_dirs=sort_dirs or None,
        limit=limit,
        marker=marker,
        filters={"project_id": project} if project is not None else {},
        by_project=project is not None,
        down_cell_records=down_records,
        columns=_LIST_COLUMNS,
    )
    unavailable = []
    for cell_uuid, reason in page.failed_cells.items():
        cell_name: str | None = None
        try:
            cell_name = cellrouter.CellMapping.get_by_uuid(ctx, cell_uuid).name
        except exception.CellMappingNotFound:
            pass
        unavailable.append({"uuid": cell_uuid, "name": cell_name, "reason": reason})
    return {
        "servers": [_server(row) for row in page.rows],
        "next_marker": page.next_marker,
        "partial": page.partial,
        "unavailable_cells": unavailable,
    }


def delete_server(server_id: str) -> tuple[str, int]:
    ctx: cellrouter.RequestContext = flask.g.ctx
    instance_uuid = _uuid(server_id)
    mapping = _mapping(ctx, instance_uuid)
    if mapping.queued_for_delete:
        raise _gone(instance_uuid)
    if mapping.cell_mapping is None:
        try:
            cellrouter.BuildRequest.get_by_instance_uuid(ctx, instance_uuid).destroy(ctx)
        except exception.BuildRequestNotFound:
            pass  # the conductor got there first: the instance has a cell now
        mapping = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, instance_uuid)
        if mapping.cell_mapping is None:
            mapping.destroy(ctx)  # never built: nothing left anywhere
            return "", 204
    cell = mapping.cell_mapping
    assert cell is not None
    with cellrouter.target_cell(ctx, cell) as cctx:
        row = cellrouter.get_instance(cctx, instance_uuid, columns=("host",))
        host = row["host"]
        if host is None or cell.is_cell0():
            cellrouter.destroy_instance(cctx, instance_uuid)  # on no host: delete here
        else:
            cellrouter.update_instance(cctx, instance_uuid, task_state="deleting")
            cctx.rpc_client("compute", server=host).cast(
                ctx.to_dict(), "delete", instance_uuid=instance_uuid
            )
    mapping.set_queued_for_delete(ctx)
    return "", 204


def _cells(ctx: cellrouter.RequestContext) -> list[dict[str, Any]]:
    """Every cell: masked URLs, health as this process knows it, instance and host counts."""
    cells = sorted(
        cellrouter.CellMapping.get_all(ctx), key=lambda c: (not c.is_cell0(), c.name or "")
    )
    nodes = cellrouter.scatter_gather_cells(
        ctx, [cell for cell in cells if not cell.is_cell0()], 5.0, cellrouter.get_compute_nodes
    )
    hosts: dict[str, int] = {}
    for host in cellrouter.HostMapping.get_all(ctx):
        hosts[host.cell_mapping.uuid] = hosts.get(host.cell_mapping.uuid, 0) + 1
    health = cellrouter.cell_health()
    out = []
    for cell in cells:
        state = health.get(cell.uuid)
        found = nodes.get(cell.uuid)
        node_list = found if isinstance(found, list) else []
        reachable = cell.is_cell0() or isinstance(found, list)
        latency = state.last_latency if state is not None else None
        out.append(
            {
                "uuid": cell.uuid,
                "name": cell.name,
                "disabled": cell.disabled,
                "database_connection": cellrouter.mask_url(cell.database_connection),
                "transport_url": cellrouter.mask_url(cell.transport_url),
                "health": {
                    "up": bool(reachable and (state is None or state.up)),
                    "queue_up": state.queue_up if state is not None else True,
                    "last_error": (
                        state.last_error
                        if state is not None and state.last_error
                        else (None if reachable else str(found))
                    ),
                    "latency_ms": round(latency * 1000, 2) if latency is not None else None,
                    "consecutive_failures": state.consecutive_failures if state else 0,
                },
                "instances": cellrouter.InstanceMapping.count_by_cell(ctx, cell.uuid),
                "hosts": hosts.get(cell.uuid, 0),
                "compute_nodes": [
                    {
                        "host": node.host,
                        "vcpus": node.vcpus,
                        "vcpus_used": node.vcpus_used,
                        "memory_mb": node.memory_mb,
                        "memory_mb_used": node.memory_mb_used,
                    }
                    for node in node_list
                ],
            }
        )
    return out


def list_cells() -> dict[str, Any]:
    _require_admin(flask.g.ctx, "GET /cells")
    return {"cells": _cells(flask.g.ctx)}


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cellrouter: cells</title>
<meta http-equiv="refresh" content="5">
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: .3em .8em; text-align: left; }}
.up {{ color: #070; }} .down {{ color: #b00; font-weight: bold; }}
</style></head>
<body><h1>Cells</h1>
<table id="cells"><tr><th>cell</th><th>uuid</th><th>health</th><th>instances</th>
<th>hosts</th><th>latency</th><th>database</th><th>queue</th></tr>
{rows}
</table>
<p>Flavors: {flavors}. JSON: <a href="/cells">/cells</a>, <a href="/servers">/servers</a>.</p>
</body></html>
"""


def status_page() -> flask.Response:
    _require_admin(flask.g.ctx, "The status page")
    rows = []
    for cell in _cells(flask.g.ctx):
        health = cell["health"]
        state = "up" if health["up"] else "down"
        latency = f"{health['latency_ms']} ms" if health["latency_ms"] is not None else "-"
        note = "" if health["up"] else f" ({html.escape(str(health['last_error']))})"
        rows.append(
            f'<tr class="cell" data-uuid="{cell["uuid"]}"><td>{html.escape(cell["name"] or "")}'
            f'</td><td>{cell["uuid"]}</td><td class="{state}">{state}{note}</td>'
            f"<td>{cell['instances']}</td><td>{cell['hosts']}</td><td>{latency}</td>"
            f"<td>{html.escape(cell['database_connection'])}</td>"
            f"<td>{html.escape(cell['transport_url'])}</td></tr>"
        )
    page = _PAGE.format(rows="\n".join(rows), flavors=html.escape(", ".join(FLAVORS)))
    return flask.Response(page, mimetype="text/html")


# -- the application -------------------------------------------------------------


def _error(status: int, message: str) -> flask.Response:
    response = flask.jsonify({"error": {"code": status, "message": message}})
    response.status_code = status
    return response


def create_app(auth: Auth | None = None) -> flask.Flask:
    """The WSGI application (cellrouter must be set up already: ``cellrouter.setup``).

    ``auth``: how callers are identified (default: ``[reference_api]`` of
    ``cellrouter.CONF``).
    """
    auth = auth if auth is not None else Auth.from_conf()
    LOG.info("Reference API auth: %s", auth.describe())
    app = flask.Flask("cellrouter.reference.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.before_request
    def _caller() -> None:
        flask.g.ctx = request_context(auth)

    app.add_url_rule("/", view_func=status_page, methods=["GET"])
    app.add_url_rule("/cells", view_func=list_cells, methods=["GET"])
    app.add_url_rule("/servers", view_func=list_servers, methods=["GET"])
    app.add_url_rule("/servers", view_func=create_server, methods=["POST"])
    app.add_url_rule("/servers/<server_id>", view_func=show_server, methods=["GET"])
    app.add_url_rule("/servers/<server_id>", view_func=delete_server, methods=["DELETE"])

    @app.errorhandler(exception.CellRouterError)
    def _cellrouter_error(error: exception.CellRouterError) -> flask.Response:
        status = status_for(error)
        if status == 500:
            LOG.error("Request failed: %s", cellrouter.mask_url(str(error)))
        return _error(status, cellrouter.mask_url(str(error)))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> flask.Response:
        response = _error(error.code or 500, error.description or error.name)
        if error.code == 401:  # as keystonemiddleware answers
            response.headers["WWW-Authenticate"] = "Keystone"
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> flask.Response:
        LOG.exception("Unexpected error: %s", cellrouter.mask_url(str(error)))
        return _error(500, f"Unexpected error: {type(error).__name__}")

    return app


def wsgi_app(config_files: Sequence[str]) -> flask.Flask:
    """Set cellrouter up from ``config_files`` and return the application (one per process)."""
    cellrouter.setup([arg for f in config_files for arg in ("--config-file", f)])
    return create_app()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cellrouter.reference.api --config-file api.conf --bind HOST:PORT --workers N``.

    Serves the API with gunicorn: ``--workers`` processes (each sets
    cellrouter up after the fork, so no connection is shared), threads in each.
    """
    parser = argparse.ArgumentParser(prog="cellrouter-reference-api")
    parser.add_argument("--config-file", action="append", default=[], required=True)
    parser.add_argument("--bind", default="127.0.0.1:8774")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    from gunicorn.app.base import BaseApplication

    config_files = list(args.config_file)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", args.bind)
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")
            self.cfg.set("graceful_timeout", 5)

        def load(self) -> flask.Flask:
            return wsgi_app(config_files)

    _Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
