"""The flavors the reference deployment offers: the size of a server, and a failure switch.

A flavor travels with the build: the API checks the name, the conductor
sizes the host with it, the compute agent accounts its usage and honours
``fail_build`` (a build that fails on purpose and records an instance fault).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cellrouter import exception

__all__ = ["FLAVORS", "Flavor", "get_flavor"]


@dataclasses.dataclass(frozen=True, slots=True)
class Flavor:
    """A server size; ``fail_build`` makes the compute agent fail the build on purpose."""

    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    fail_build: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Flavor:
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (
        Flavor("m1.tiny", 1, 512, 1),
        Flavor("m1.small", 1, 2048, 20),
        Flavor("m1.medium", 2, 4096, 40),
        Flavor("m1.large", 4, 8192, 80),
        # larger than any reference host: never scheduled, buried in cell0
        Flavor("m1.huge", 256, 4194304, 10000),
        # scheduled, then its build fails on the compute host (ERROR + fault)
        Flavor("m1.broken", 1, 512, 1, fail_build=True),
    )
}


def get_flavor(name: object) -> Flavor:
    """The flavor called ``name``; InvalidValue (HTTP 400) for anything else."""
    if not isinstance(name, str) or name not in FLAVORS:
        raise exception.InvalidValue(
            what="flavor", reason=f"{name!r} is not one of {', '.join(FLAVORS)}"
        )
    return FLAVORS[name]
