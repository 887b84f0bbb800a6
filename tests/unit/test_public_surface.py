"""The public surface: every name resolves, and what it returns is public too."""

from __future__ import annotations

import inspect
import typing
from types import ModuleType

import cellrouter

PUBLIC = {name: getattr(cellrouter, name) for name in cellrouter.__all__}


def _public_classes() -> set[type]:
    classes = {value for value in PUBLIC.values() if isinstance(value, type)}
    classes |= {value for value in vars(cellrouter.exception).values() if isinstance(value, type)}
    return classes


def _classes_in(annotation: object) -> set[type]:
    """Every class an annotation names (through unions, generics, Optional...)."""
    if isinstance(annotation, type):
        return {annotation}
    found: set[type] = set()
    for arg in typing.get_args(annotation):
        found |= _classes_in(arg)
    origin = typing.get_origin(annotation)
    if isinstance(origin, type):
        found.add(origin)
    return found


def _cellrouter_classes(annotation: object) -> set[type]:
    return {
        cls for cls in _classes_in(annotation) if cls.__module__.partition(".")[0] == "cellrouter"
    }


def test_every_public_name_resolves() -> None:
    assert sorted(PUBLIC) == sorted(cellrouter.__all__)
    assert isinstance(PUBLIC["command"], ModuleType)  # the operator verbs, loaded lazily
    assert callable(PUBLIC["start_periodic_discovery"])


def test_every_public_function_returns_public_types() -> None:
    public = _public_classes()
    leaks: list[str] = []
    callables: list[tuple[str, object]] = [
        (name, value) for name, value in PUBLIC.items() if inspect.isfunction(value)
    ]
    for cls in (value for value in PUBLIC.values() if isinstance(value, type)):
        callables += [
            (f"{cls.__name__}.{name}", member)
            for name, member in vars(cls).items()
            if (not name.startswith("_") or name == "__enter__")
            and (inspect.isfunction(member) or isinstance(member, classmethod))
        ]
    for name, fn in callables:
        target = fn.__func__ if isinstance(fn, classmethod) else fn
        hints = typing.get_type_hints(target, localns=PUBLIC)
        leaks += [
            f"{name} -> {cls.__module__}.{cls.__qualname__}"
            for cls in _cellrouter_classes(hints.get("return"))
            if cls not in public
        ]
    assert leaks == []


def test_a_compute_agent_needs_only_public_names() -> None:
    # what the reference compute agent and conductor build on (issue: public surface)
    for name in (
        "RequestContext", "get_admin_context", "target_cell", "create_instance",
        "update_instance", "destroy_instance", "get_instance", "sync_schema",
        "schema_version", "schema_head", "ListResult", "CellHealth", "start_periodic_discovery",
        "register_compute_node", "get_compute_nodes", "add_compute_usage", "ComputeNode",
        "record_instance_fault", "get_instance_faults",
    ):  # fmt: skip
        assert name in cellrouter.__all__
    assert callable(cellrouter.RequestContext.rpc_server)
    assert callable(cellrouter.RequestContext.rpc_client)
