"""``cellrouter-demo``: the reference deployment doing the main job, driven over HTTP.

In a working directory it creates (default ``./cellrouter-demo``, emptied of
its own files first, so it runs again), it sets up the API database, cell0
and two cells, starts compute agents for three hosts per cell, maps them
with ``discover_hosts``, serves the reference API on a local port and then,
over HTTP only: boots servers (some buried in cell0, some failing on their
host, on purpose), lists them sorted and paginated across the cells, lets
each of the two projects list only its own servers (and be refused the
other's), shows some, deletes some, makes one cell unreachable and lists
again (partial, with down-cell records), and prints a short report with
timings.

The API runs with ``[reference_api]/auth_strategy = noauth`` (no Keystone
here): a request without keystonemiddleware's headers is the fixed admin
caller (project ``demo``); the projects' own requests send the headers
keystonemiddleware would set.

Default: SQLite files and in-process messaging, everything in this process.
``--mysql URL --rabbit URL``: the same on MariaDB and RabbitMQ, with the API
(gunicorn workers), the conductor and each cell's agents as processes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cellrouter
from cellrouter import exception
from cellrouter.reference.auth import Auth
from cellrouter.reference.deployment import (
    CellSpec,
    EmbeddedDeployment,
    ProcessDeployment,
    Topology,
)

__all__ = ["Client", "main", "run"]

#: exit codes: 0 done, 1 a step failed (the message says which), 2 bad arguments
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_OWN_FILES = ("*.db", "*.db-journal", "*.db-wal", "*.db-shm", "*.conf", "*.log")


class Client:
    """A tiny JSON client of the reference API (urllib: nothing to install)."""

    def __init__(
        self, base: str, timeout: float = 30.0, headers: Mapping[str, str] | None = None
    ) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})

    def as_caller(
        self, project_id: str, user_id: str | None = None, roles: Sequence[str] = ()
    ) -> Client:
        """A client sending what keystonemiddleware sets for a token of ``project_id``."""
        headers = {"X-Project-Id": project_id, "X-Roles": ",".join(roles)}
        if user_id is not None:
            headers["X-User-Id"] = user_id
        return Client(self.base, self.timeout, headers)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def expect(self, status: int, method: str, path: str, body: Any = None) -> Any:
        got, answer = self.request(method, path, body)
        if got != status:
            raise exception.CellRouterError(
                f"{method} {path}: expected {status}, got {got}: {answer}"
            )
        return answer

    def list_all(self, **params: Any) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        """Every server, page by page; (servers, pages, last page)."""
        servers: list[dict[str, Any]] = []
        marker, pages = None, 0
        while True:
            query = dict(params)
            if marker:
                query["marker"] = marker
            page = self.expect(200, "GET", "/servers?" + urllib.parse.urlencode(query, True))
            servers += page["servers"]
            pages += 1
            marker = page["next_marker"]
            if not marker:
                return servers, pages, page


class Report:
    """Steps as they run (printed at once) and their timings (printed at the end)."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.timings: list[tuple[str, float]] = []
        self._n = 0

    def step(self, title: str) -> float:
        self._n += 1
        self.out(f"\n[{self._n}] {title}")
        return time.perf_counter()

    def done(self, title: str, started: float, detail: str) -> None:
        elapsed = time.perf_counter() - started
        self.timings.append((title, elapsed))
        self.out(f"    {detail}  ({elapsed:.2f} s)")


def _progress(out: Callable[[str], None], done: int, total: int, tty: bool) -> None:
    width = 30
    filled = width * done // max(total, 1)
    bar = f"    [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if tty:
        sys.stdout.write("\r" + bar + ("\n" if done == total else ""))
        sys.stdout.flush()
    elif done == total or done % max(total // 4, 1) == 0:
        out(bar)


def _wait_settled(client: Client, expected: int, timeout: float) -> list[dict[str, Any]]:
    """Poll the list until it holds ``expected`` servers and none is still building."""
    deadline = time.monotonic() + timeout
    while True:
        servers, _, _ = client.list_all(limit=1000)
        if len(servers) == expected and not any(s["status"] == "BUILD" for s in servers):
            return servers
        if time.monotonic() > deadline:
            building = sum(s["status"] == "BUILD" for s in servers)
            raise exception.CellRouterError(
                f"after {timeout:.0f} s: {len(servers)}/{expected} listed, {building} building"
            )
        time.sleep(0.3)


def run(
    deployment: EmbeddedDeployment | ProcessDeployment,
    servers: int,
    out: Callable[[str], None] = print,
    down_url: str | None = None,
) -> dict[str, Any]:
    """The scenario against a deployment that is not started yet; returns the figures."""
    report = Report(out)
    tty = sys.stdout.isatty()
    topology = deployment.topology
    names = ", ".join(spec.name for spec in topology.cells)
    t = report.step(f"Set up the API database, cell0 and {names}; start the compute agents")
    deployment.start()
    hosts = len(deployment.discovered.new_hosts)
    report.done(
        "setup",
        t,
        f"{len(deployment.cells)} cells mapped (masked URLs on GET /cells); "
        f"discover_hosts mapped {hosts} new host(s); API at {deployment.url}",
    )
    report.out(f"    API auth: {Auth.from_conf().describe()}")
    client = Client(deployment.url)
    try:
        return _scenario(client, deployment, servers, report, tty, down_url)
    finally:
        deployment.stop()


def _scenario(
    client: Client,
    deployment: EmbeddedDeployment | ProcessDeployment,
    servers: int,
    report: Report,
    tty: bool,
    down_url: str | None,
) -> dict[str, Any]:
    out = report.out
    figures: dict[str, Any] = {}
    # -- boot
    buried, broken = max(servers // 20, 1), max(servers // 50, 1)
    flavors = ["m1.huge"] * buried + ["m1.broken"] * broken
    flavors += [("m1.tiny", "m1.small", "m1.medium")[i % 3] for i in range(servers - len(flavors))]
    t = report.step(f"Boot {servers} servers over HTTP (POST /servers, 8 at a time)")
    ids: list[str] = []

    def boot(i: int) -> str:
        body = {"name": f"demo-{i:04d}", "flavor": flavors[i], "project": f"project-{i % 2}"}
        return str(client.expect(202, "POST", "/servers", body)["server"]["id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for n, server_id in enumerate(pool.map(boot, range(servers)), 1):
            ids.append(server_id)
            _progress(out, n, servers, tty)
    accepted = time.perf_counter() - t
    listed = _wait_settled(client, servers, timeout=120)
    by_status: dict[str, int] = {}
    for server in listed:
        by_status[server["status"]] = by_status.get(server["status"], 0) + 1
    figures["boot_per_s"] = servers / accepted
    report.done(
        "boot",
        t,
        f"accepted in {accepted:.2f} s ({servers / accepted:.0f}/s); built: "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
        + f" ({buried} too big for any host -> cell0, {broken} failing on their host)",
    )
    # -- where they landed
    cells = client.expect(200, "GET", "/cells")["cells"]
    out(
        "    per cell: "
        + ", ".join(f"{c['name']} {c['instances']} instance(s)/{c['hosts']} host(s)" for c in cells)
    )
    # -- list
    t = report.step("List across the cells: sorted by name, 50 per page, marker to marker")
    walked, pages, _ = client.list_all(limit=50, sort_key="display_name", sort_dir="asc")
    names = [s["name"] for s in walked]
    if names != sorted(names) or len(walked) != servers:
        raise exception.CellRouterError("the paginated list is not complete and sorted")
    report.done(
        "list",
        t,
        f"{len(walked)} servers in {pages} pages, in order: {names[0]}, {names[1]} ... {names[-1]}",
    )
    # -- projects
    projects = sorted({s["project_id"] for s in listed})
    t = report.step(
        f"Each project lists only its own servers ({' and '.join(projects)}, "
        "X-Project-Id as keystonemiddleware sets it, no admin role)"
    )
    for project in projects:
        other = next(p for p in projects if p != project)
        tenant = client.as_caller(project, user_id=f"{project}-user")
        own, _, _ = tenant.list_all(limit=1000)
        expected = {s["id"] for s in listed if s["project_id"] == project}
        if {s["id"] for s in own} != expected or len(own) != len(expected):
            raise exception.CellRouterError(f"{project} does not list exactly its own servers")
        asked, _, _ = tenant.list_all(limit=1000, project_id=other)
        foreign = next(s["id"] for s in listed if s["project_id"] == other)
        shown, _ = tenant.request("GET", f"/servers/{foreign}")
        cells_status, _ = tenant.request("GET", "/cells")
        if {s["id"] for s in asked} != expected or shown != 404 or cells_status != 403:
            raise exception.CellRouterError(f"{project} reached beyond its own project")
        out(
            f"    {project}: {len(own)} servers, all its own; with project_id={other}: "
            f"still its own {len(asked)}; a {other} server: {shown}; GET /cells: {cells_status}"
        )
    report.done("projects", t, f"{len(projects)} projects, each isolated from the other")
    # -- show
    t = report.step("Show servers (resolved through their instance mapping)")
    active = next(s for s in listed if s["status"] == "ACTIVE")
    one = client.expect(200, "GET", f"/servers/{active['id']}")["server"]
    out(f"    {one['name']}: {one['status']} on {one['host']} in {one['cell']['name']}")
    error = next(s for s in listed if s["status"] == "ERROR" and s["host"] is None)
    failed = next(s for s in listed if s["status"] == "ERROR" and s["host"] is not None)
    for server_id in (error["id"], failed["id"]):
        shown = client.expect(200, "GET", f"/servers/{server_id}")["server"]
        cell, fault = shown["cell"]["name"], shown["fault"]["message"]
        out(f"    {shown['name']}: {shown['status']} in {cell}: {fault}")
    report.done("show", t, "3 servers shown")
    # -- delete
    doomed = [s["id"] for s in listed[: max(servers // 10, 1)]]
    t = report.step(f"Delete {len(doomed)} servers (DELETE /servers/<id>; the host deletes it)")
    for server_id in doomed:
        client.expect(204, "DELETE", f"/servers/{server_id}")
    left = _wait_settled(client, servers - len(doomed), timeout=60)
    report.done("delete", t, f"{len(left)} servers left; a deleted one answers 404")
    client.expect(404, "GET", f"/servers/{doomed[0]}")
    # -- a cell goes away
    victim = deployment.cells[deployment.topology.cells[-1].name]
    t = report.step(f"Make {victim.name} unreachable (its database URL now points nowhere)")
    original = victim.database_connection
    unreachable = down_url or _unreachable_url(deployment.workdir, victim.name or "cell")
    cellrouter.command.update_cell(victim.uuid, database_connection=unreachable)
    try:
        page = client.expect(200, "GET", "/servers?limit=1000")
        records = client.expect(200, "GET", "/servers?limit=1000&down_cell_records=true")
        unknown = [s for s in records["servers"] if s["status"] == "UNKNOWN"]
        down = ", ".join(f"{c['name']} ({c['reason']})" for c in records["unavailable_cells"])
        count, partial = len(page["servers"]), page["partial"]
        out(f"    without down-cell records: {count} servers, partial={partial}")
        out(
            f"    with down-cell records: {len(records['servers'])} servers, "
            f"{len(unknown)} of them UNKNOWN stand-ins from the API database"
        )
        out(f"    unavailable: {down}")
        status, answer = (
            client.request("GET", f"/servers/{unknown[0]['id']}") if unknown else (0, {})
        )
        if unknown:
            message = answer["error"]["message"]
            shown = message if len(message) <= 110 else message[:110].rsplit(" ", 1)[0] + " ..."
            out(f"    show one of them: {status} {shown}")
        figures.update(partial=page["partial"], down_records=len(unknown))
        report.done("down", t, "the other cells answered; nothing was silently short")
    finally:
        cellrouter.command.update_cell(victim.uuid, database_connection=original)
    # -- report
    out("\nReport")
    for title, seconds in report.timings:
        out(f"    {title:<8} {seconds:7.2f} s")
    out(f"    total    {sum(s for _, s in report.timings):7.2f} s")
    figures.update(servers=servers, left=len(left), by_status=by_status)
    return figures


def _unreachable_url(workdir: Path, name: str) -> str:
    return f"sqlite:///{Path(workdir).resolve() / 'unreachable' / (name + '.db')}"


def _clean(workdir: Path) -> None:
    """Remove the files an earlier run left (only the demo's own kinds of files)."""
    if not workdir.exists():
        return
    for pattern in _OWN_FILES:
        for path in workdir.glob(pattern):
            path.unlink()


def _server_topology(mysql: str, rabbit: str, workdir: Path) -> Topology:
    """Databases ``cellrouter_demo_*`` on the MySQL server (recreated), one broker."""
    import sqlalchemy as sa

    server = sa.make_url(mysql)
    engine = sa.create_engine(server.set(database=""), isolation_level="AUTOCOMMIT")
    names = {key: f"cellrouter_demo_{key}" for key in ("api", "cell0", "cell1", "cell2")}
    with engine.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    engine.dispose()

    def db(key: str) -> str:
        return server.set(database=names[key]).render_as_string(hide_password=False)

    return Topology(
        api_database=db("api"),
        cell0_database=db("cell0"),
        api_transport_url=rabbit,
        cells=tuple(
            CellSpec(
                name=f"cell{n}",
                database_connection=db(f"cell{n}"),
                transport_url=rabbit,
                hosts=tuple(f"cell{n}-host{h}" for h in range(1, 4)),
            )
            for n in (1, 2)
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cellrouter-demo",
        description="Run the reference deployment and drive it over HTTP. Exit codes: "
        "0 done, 1 a step failed, 2 bad arguments.",
    )
    parser.add_argument("--workdir", type=Path, default=Path("cellrouter-demo"))
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--mysql", help="MySQL/MariaDB server URL (SQLAlchemy form)")
    parser.add_argument("--rabbit", help="RabbitMQ transport URL (rabbit://...)")
    args = parser.parse_args(argv)
    if args.servers < 10:
        parser.error("--servers must be at least 10")
    if bool(args.mysql) != bool(args.rabbit):
        parser.error("--mysql and --rabbit go together")
    workdir: Path = args.workdir
    _clean(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "demo.log"
    # The services' logs (the API server's, cellrouter's) go to a file: the
    # terminal shows the scenario.
    logging.basicConfig(
        filename=log_file, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        if args.mysql:
            topology = _server_topology(args.mysql, args.rabbit, workdir)
            deployment: EmbeddedDeployment | ProcessDeployment = ProcessDeployment(
                topology, workdir, auth_strategy="noauth"
            )
            down_url = sa_down_url(args.mysql)
            print(
                f"cellrouter demo on {cellrouter.mask_url(args.mysql)} and "
                f"{cellrouter.mask_url(args.rabbit)}, one process per service; files in {workdir}"
            )
        else:
            topology = Topology.sqlite(workdir)
            deployment = EmbeddedDeployment(topology, workdir, auth_strategy="noauth")
            down_url = None
            print(
                f"cellrouter demo: SQLite files in {workdir}/, in-process messaging; "
                "API, conductor and compute agents in this process"
            )
        started = time.perf_counter()
        run(deployment, args.servers, down_url=down_url)
    except exception.CellRouterError as error:
        print(f"demo failed: {cellrouter.mask_url(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"\nDone in {time.perf_counter() - started:.1f} s (logs: {log_file}). "
        "Run it again any time."
    )
    return EXIT_OK


def sa_down_url(mysql: str) -> str:
    """A database URL on a port nothing listens on: the cell's server is gone."""
    import sqlalchemy as sa

    url = sa.make_url(mysql)
    return url.set(port=1, database="cellrouter_demo_gone").render_as_string(hide_password=False)


if __name__ == "__main__":
    sys.exit(main())
