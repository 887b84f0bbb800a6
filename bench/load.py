"""Load on the reference API: N threads of mixed show/list/create for a fixed time (a plain script).

    python bench/load.py [--threads 8] [--seconds 10] [--servers 300] [--workdir DIR]

Starts the embedded reference deployment (SQLite, in-process messaging: the
API, conductor and compute agents in this process, as ``cellrouter-demo``
runs it), boots ``--servers`` servers, then runs the load twice: with every
cell up, and with one cell unreachable (its database URL pointing nowhere).
Each thread loops over 6 shows of a random server, 3 list pages (limit 50,
``created_at desc``) and 1 create. Printed per run and per kind: requests/s,
p50 and p99 latency, and the answers: 2xx, 503 (a show of a server in the
down cell: the expected answer) and other errors (anything else: a bug).
The load generator shares the process (and the GIL) with the services, so
absolute figures are a floor.
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


def load(
    base: str, ids: list[str], threads: int, seconds: float
) -> dict[str, list[tuple[float, int]]]:
    """kind -> [(seconds, status)] of every request the threads made in ``seconds``."""
    results: dict[str, list[tuple[float, int]]] = {kind: [] for kind in set(MIX)}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        client = Client(base)
        mine: dict[str, list[tuple[float, int]]] = {kind: [] for kind in set(MIX)}
        n = 0
        while time.monotonic() < stop:
            kind = MIX[n % len(MIX)]
            n += 1
            start = time.perf_counter()
            if kind == "show":
                status, _ = client.request("GET", f"/servers/{rnd.choice(ids)}")
            elif kind == "list":
                status, _ = client.request("GET", "/servers?limit=50")
            else:
                body = {"name": f"load-{seed}-{n}", "flavor": "m1.tiny", "project": "load"}
                status, _ = client.request("POST", "/servers", body)
            mine[kind].append((time.perf_counter() - start, status))
        with lock:
            for kind, values in mine.items():
                results[kind].extend(values)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def report(title: str, results: dict[str, list[tuple[float, int]]], seconds: float) -> None:
    print(f"\n{title}")
    print(f"    {'kind':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'2xx':>8}{'503':>7}{'errors':>8}")
    everything = [value for values in results.values() for value in values]
    for kind, values in [*sorted(results.items()), ("all", everything)]:
        if not values:
            continue
        times = sorted(t for t, _ in values)
        p50 = statistics.median(times) * 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        ok = sum(200 <= s < 300 for _, s in values)
        down = sum(s == 503 for _, s in values)
        errors = len(values) - ok - down
        print(
            f"    {kind:<8}{len(values) / seconds:>9.0f}{p50:>9.1f}{p99:>9.1f}"
            f"{ok:>8}{down:>7}{errors:>8}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.threads < 1 or args.seconds <= 0 or args.servers < 1:
        parser.error("--threads, --seconds and --servers must be positive")
    with tempfile.TemporaryDirectory(prefix="cellrouter-load-") as scratch:
        workdir = args.workdir or Path(scratch)
        deployment = EmbeddedDeployment(Topology.sqlite(workdir), workdir, threads=32).start()
        try:
            client = Client(deployment.url)
            ids = [
                client.expect(
                    202,
                    "POST",
                    "/servers",
                    {"name": f"seed-{i}", "flavor": "m1.tiny", "project": "p"},
                )["server"]["id"]
                for i in range(args.servers)
            ]
            while any(s["status"] == "BUILD" for s in client.list_all(limit=1000)[0]):
                time.sleep(0.2)
            print(
                f"reference API at {deployment.url}: {args.servers} servers in 2 cells, "
                f"{args.threads} threads, {args.seconds:.0f} s per run, mix 6 show:3 list:1 create"
            )
            report(
                "all cells up", load(deployment.url, ids, args.threads, args.seconds), args.seconds
            )
            victim = deployment.cells["cell2"]
            gone = f"sqlite:///{Path(workdir).resolve() / 'unreachable' / 'cell2.db'}"
            cellrouter.command.update_cell(victim.uuid, database_connection=gone)
            try:
                results = load(deployment.url, ids, args.threads, args.seconds)
            finally:
                cellrouter.command.update_cell(
                    victim.uuid, database_connection=victim.database_connection
                )
            report("cell2 down (its shows answer 503; lists are partial)", results, args.seconds)
        finally:
            deployment.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
