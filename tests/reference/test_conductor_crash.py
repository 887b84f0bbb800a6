"""A crash after each step of the super conductor leaves a visible server the sweep finishes.

The ordering is the one the conductor's module docstring states; the crash
is an exception raised right after a step (nothing after it runs), and the
server's state is read over HTTP at that moment.
"""

from __future__ import annotations

from typing import Any

import pytest
from reference_helpers import rows_everywhere, wait_for

import cellrouter
from cellrouter import exception
from cellrouter.reference import conductor as conductor_module
from cellrouter.reference.conductor import STEPS
from cellrouter.reference.demo import Client
from cellrouter.reference.deployment import EmbeddedDeployment


class Crash(Exception):
    """Stands in for the conductor process dying right after a step."""


def used_memory(client: Client) -> int:
    cells = client.expect(200, "GET", "/cells")["cells"]
    return sum(node["memory_mb_used"] for cell in cells for node in cell["compute_nodes"])


def test_the_docstring_states_the_steps_in_order() -> None:
    doc = conductor_module.__doc__ or ""
    positions = [doc.index(f"``{step}``") for step in STEPS]
    assert positions == sorted(positions)


@pytest.mark.parametrize("flavor", ["m1.tiny", "m1.huge"])
@pytest.mark.parametrize("step", STEPS)
def test_crash_after_each_step(
    client: Client, embedded: EmbeddedDeployment, step: str, flavor: str
) -> None:
    conductor = embedded.conductor
    assert conductor is not None
    seen: dict[str, Any] = {}
    before = used_memory(client)

    def crash(done: str, instance_uuid: str) -> None:
        if done != step or seen:
            return
        show = client.request("GET", f"/servers/{instance_uuid}")
        listed = client.expect(200, "GET", "/servers?limit=1000")
        seen.update(show=show, list=listed)  # at once: the test thread waits for it
        raise Crash(step)

    conductor.after_step = crash
    try:
        body = {"name": f"crash-{step}", "flavor": flavor, "project": "crash"}
        server_id = client.expect(202, "POST", "/servers", body)["server"]["id"]
        wait_for(lambda: seen)
    finally:
        conductor.after_step = None
    status, shown = seen["show"]
    assert status == 200, shown  # the user sees the server at every crash point
    server = shown["server"]
    assert server["status"] in ("BUILD", "ACTIVE", "ERROR")
    if STEPS.index(step) < STEPS.index("map"):
        assert server["cell"] is None and server["status"] == "BUILD"  # from its build request
    else:
        assert server["cell"] is not None
    listed = [s["id"] for s in seen["list"]["servers"]].count(server_id)
    assert listed == (1 if STEPS.index(step) >= STEPS.index("create") else 0)

    conductor.sweep(min_age=0)  # what the next sweep (or a restarted conductor) does

    def finished() -> dict[str, Any] | None:
        got = client.expect(200, "GET", f"/servers/{server_id}")["server"]
        return got if got["status"] != "BUILD" else None

    final = wait_for(finished)
    expected = "ACTIVE" if flavor == "m1.tiny" else "ERROR"
    assert final["status"] == expected
    rows = rows_everywhere(server_id)
    assert list(rows) == [final["cell"]["name"]]  # exactly one row, in the mapped cell
    ctx = cellrouter.get_admin_context()
    mapping = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, server_id)
    assert mapping.cell_uuid == final["cell"]["uuid"]
    with pytest.raises(exception.BuildRequestNotFound):
        cellrouter.BuildRequest.get_by_instance_uuid(ctx, server_id)
    if flavor == "m1.huge":
        assert final["cell"]["uuid"] == cellrouter.CELL0_UUID and final["fault"]
        assert used_memory(client) == before
    else:
        assert used_memory(client) == before + 512  # claimed once, whatever the crash
    listed_now = client.expect(200, "GET", "/servers?project_id=crash&limit=1000")["servers"]
    assert [s["id"] for s in listed_now].count(server_id) == 1
