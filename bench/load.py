"""Load on the reference API: N threads of mixed show/list/create for a fixed time (a plain script).

    python bench/load.py [--threads 9] [--seconds 10] [--servers 300] [--tenants 3] [--workdir DIR]

Starts the embedded reference deployment with three cells (SQLite,
in-process messaging: the API, conductor and compute agents in this process,
as ``cellrouter-demo`` runs it; ``auth_strategy = keystone``, every request
carries keystonemiddleware's headers), boots ``--servers`` servers for
``--tenants`` projects (the last one small and read-only: 2 servers, so its
lists ask at most two cells; its threads list where others create), then
runs the load twice: with every cell up, and with one cell unreachable (its
database URL pointing nowhere). Each thread is one
tenant (round robin) and loops over 6 shows of a random server of its own, 3
list pages of its project (limit 50, ``created_at desc``) and 1 create.
Printed per run, per kind and per tenant: requests/s, p50 and p99 latency,
and the answers: 2xx, 503 (a show of a server in the down cell: the expected
answer) and other errors (anything else: a bug); per tenant also the cells
its list asks and how many of its lists were partial. The load generator
shares the process (and the GIL) with the services, so absolute figures are
a floor.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# The repository itself, whatever the current directory (run as a plain script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cellrouter  # noqa: E402
from cellrouter.reference.demo import Client  # noqa: E402
from cellrouter.reference.deployment import EmbeddedDeployment, Topology  # noqa: E402

MIX = ["show"] * 6 + ["list"] * 3 + ["create"]
#: (tenant, kind) -> [(seconds, status)]; a list's status is 206 when the page was partial
Results = dict[tuple[str, str], list[tuple[float, int]]]


def load(
    base: str, ids: dict[str, list[str]], threads: int, seconds: float, read_only: str
) -> Results:
    """What the threads (thread i: tenant i mod the tenants) did in ``seconds``."""
    tenants = sorted(ids)
    results: Results = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        tenant = tenants[seed % len(tenants)]
        client = Client(base).as_caller(tenant, f"{tenant}-user", ["member"])
        mine: Results = {}
        n = 0
        while time.monotonic() < stop:
            kind = MIX[n % len(MIX)]
            n += 1
            if kind == "create" and tenant == read_only:
                kind = "list"
            start = time.perf_counter()
            if kind == "show":
                status, _ = client.request("GET", f"/servers/{rnd.choice(ids[tenant])}")
            elif kind == "list":
                status, page = client.request("GET", "/servers?limit=50")
                if status == 200 and page["partial"]:
                    status = 206
            else:
                body = {"name": f"load-{seed}-{n}", "flavor": "m1.tiny"}
                status, _ = client.request("POST", "/servers", body)
            mine.setdefault((tenant, kind), []).append((time.perf_counter() - start, status))
        with lock:
            for key, values in mine.items():
                results.setdefault(key, []).extend(values)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def _row(label: str, values: list[tuple[float, int]], seconds: float, extra: str = "") -> str:
    times = sorted(t for t, _ in values)
    p50 = statistics.median(times) * 1000
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
    ok = sum(200 <= s < 300 for _, s in values)
    down = sum(s == 503 for _, s in values)
    errors = len(values) - ok - down
    return (
        f"    {label:<18}{len(values) / seconds:>8.0f}{p50:>9.1f}{p99:>9.1f}"
        f"{ok:>8}{down:>7}{errors:>8}{extra}"
    )


def report(title: str, results: Results, seconds: float, cells: dict[str, int]) -> None:
    """Per kind (every tenant), then per tenant (every kind)."""
    print(f"\n{title}")
    header = f"    {'':<18}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'2xx':>8}{'503':>7}{'errors':>8}"
    print(header)
    kinds: dict[str, list[tuple[float, int]]] = {}
    tenants: dict[str, list[tuple[float, int]]] = {}
    for (tenant, kind), values in results.items():
        kinds.setdefault(kind, []).extend(values)
        tenants.setdefault(tenant, []).extend(values)
    everything = [value for values in results.values() for value in values]
    for kind, values in [*sorted(kinds.items()), ("all", everything)]:
        print(_row(kind, values, seconds))
    print(header.replace(" " * 18, f"{'tenant':<18}", 1) + "  cells  partial lists")
    for tenant, values in sorted(tenants.items()):
        lists = results.get((tenant, "list"), [])
        partial = sum(s == 206 for _, s in lists)
        extra = f"{cells[tenant]:>7}  {partial}/{len(lists)}"
        print(_row(tenant, values, seconds, extra))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.threads < 1 or args.seconds <= 0 or args.servers < 1:
        parser.error("--threads, --seconds and --servers must be positive")
    if args.tenants < 2 or args.servers < 2 * args.tenants:
        parser.error("--tenants must be at least 2, with at least 2 servers each")
    tenants = [f"tenant-{n}" for n in range(1, args.tenants + 1)]
    big = tenants[:-1]
    with tempfile.TemporaryDirectory(prefix="cellrouter-load-") as scratch:
        workdir = args.workdir or Path(scratch)
        topology = Topology.sqlite(workdir, cells=3)
        deployment = EmbeddedDeployment(topology, workdir, threads=32).start()
        try:
            admin = Client(deployment.url).as_caller("operators", "operator", ["admin"])
            ids: dict[str, list[str]] = {tenant: [] for tenant in tenants}
            owners = [big[i % len(big)] for i in range(args.servers - 2)] + [tenants[-1]] * 2
            for i, tenant in enumerate(owners):
                body = {"name": f"seed-{i}", "flavor": "m1.tiny", "project": tenant}
                ids[tenant].append(admin.expect(202, "POST", "/servers", body)["server"]["id"])
            while any(s["status"] == "BUILD" for s in admin.list_all(limit=1000)[0]):
                time.sleep(0.2)
            ctx = cellrouter.get_admin_context()

            def cells() -> dict[str, int]:
                """tenant -> the cells its list asks (where it has instances)."""
                return {t: len(cellrouter.CellMapping.get_by_project(ctx, t)) for t in tenants}

            small = tenants[-1]
            print(
                f"reference API at {deployment.url}: {args.servers} servers in 3 cells for "
                f"{args.tenants} tenants ({', '.join(f'{t} {len(ids[t])}' for t in tenants)}), "
                f"{args.threads} threads, {args.seconds:.0f} s per run, "
                "mix 6 show:3 list:1 create, each thread one tenant"
            )
            asked = cells()
            results = load(deployment.url, ids, args.threads, args.seconds, small)
            report("all cells up", results, args.seconds, asked)
            holding = {
                cellrouter.InstanceMapping.get_by_instance_uuid(ctx, i).cell_uuid
                for i in ids[small]
            }
            # the cell to take down: one without the small tenant's servers if there is one
            names = [spec.name for spec in topology.cells]
            victim_name = next(
                (n for n in reversed(names) if deployment.cells[n].uuid not in holding), names[-1]
            )
            victim = deployment.cells[victim_name]
            gone = f"sqlite:///{Path(workdir).resolve() / 'unreachable' / 'victim.db'}"
            cellrouter.command.update_cell(victim.uuid, database_connection=gone)
            asked = cells()
            try:
                results = load(deployment.url, ids, args.threads, args.seconds, small)
            finally:
                cellrouter.command.update_cell(
                    victim.uuid, database_connection=victim.database_connection
                )
            report(
                f"{victim_name} down (its shows answer 503; lists asking it are partial; "
                f"{small} has no server there: {victim.uuid not in holding})",
                results,
                args.seconds,
                asked,
            )
        finally:
            deployment.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
