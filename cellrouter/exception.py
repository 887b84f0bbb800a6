"""Every error cellrouter raises, all under :class:`CellRouterError`.

Messages are safe to print and log: they never carry a clear-text secret
(URLs are masked before they get here).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApiDatabaseUnavailable",
    "BuildRequestExists",
    "BuildRequestNotFound",
    "CellHasHosts",
    "CellHasInstances",
    "CellHasOnlyDeletedInstances",
    "CellIsCell0",
    "CellMappingExists",
    "CellMappingNotFound",
    "CellRouterError",
    "CellUnavailable",
    "ConfigurationError",
    "ConflictingOptions",
    "DatabaseUnavailable",
    "DuplicateCellURL",
    "HostHasInstances",
    "HostInOtherCell",
    "HostMappingExists",
    "HostMappingNotFound",
    "InstanceMappingExists",
    "InstanceMappingNotFound",
    "InstanceNotFound",
    "InstanceNotScheduled",
    "InvalidMarker",
    "InvalidMaxCount",
    "InvalidSortKey",
    "InvalidURL",
    "InvalidValue",
    "MissingConnection",
    "MissingURL",
    "NoComputeHosts",
    "NotFound",
    "UnknownRevision",
    "Unavailable",
    "UpcallForbidden",
]


class CellRouterError(Exception):
    """Base of every cellrouter error; ``msg_fmt`` is formatted with the kwargs."""

    msg_fmt: ClassVar[str] = "An unknown cellrouter error occurred."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            message = self.msg_fmt.format(**kwargs)
        super().__init__(message)


class ConfigurationError(CellRouterError):
    msg_fmt = "Invalid configuration: {reason}"


class MissingConnection(ConfigurationError):
    msg_fmt = "Option [{group}]/{option} is not set; set it in the configuration file."


class UpcallForbidden(CellRouterError):
    msg_fmt = (
        "This service is configured as a cell-level service ([database]/connection "
        "without [api_database]/connection) and must not reach the API database: {what}"
    )


class InvalidValue(CellRouterError, ValueError):
    """A bad argument (also a ValueError, for callers that catch those)."""

    msg_fmt = "Invalid {what}: {reason}"

    @classmethod
    def require(cls, **values: object) -> None:
        """Raise for the first of ``values`` that is missing (None or empty)."""
        for name, value in values.items():
            if value is None or value == "":
                raise cls(what=name, reason="a value is required")


class InvalidURL(CellRouterError):
    msg_fmt = "Invalid {kind} URL {url}: {reason}"


class NotFound(CellRouterError):
    msg_fmt = "Not found."


class CellMappingNotFound(NotFound):
    msg_fmt = "Cell {uuid} has no mapping."


class InstanceMappingNotFound(NotFound):
    msg_fmt = "Instance {uuid} has no mapping."


class HostMappingNotFound(NotFound):
    msg_fmt = "Host {host} is not mapped to any cell."


class BuildRequestNotFound(NotFound):
    msg_fmt = "Instance {uuid} has no build request."


class InstanceNotFound(NotFound):
    msg_fmt = "Instance {uuid} is not in cell {cell}."


class InstanceNotScheduled(CellRouterError):
    msg_fmt = "Instance {uuid} is still building: its mapping has no cell yet."


class CellMappingExists(CellRouterError):
    msg_fmt = "Cell {uuid} already exists."


class DuplicateCellURL(CellRouterError):
    msg_fmt = "Cell {other} already uses this {kind} URL."


class HostMappingExists(CellRouterError):
    msg_fmt = "Host {host} is already mapped to cell {cell}."


class BuildRequestExists(CellRouterError):
    msg_fmt = "Instance {uuid} already has a build request."


class InstanceMappingExists(CellRouterError):
    msg_fmt = "Instance {uuid} already has a mapping."


class CellHasHosts(CellRouterError):
    msg_fmt = "Cell {uuid} still has hosts mapped."


class CellHasInstances(CellRouterError):
    msg_fmt = "Cell {uuid} still has instances."


class Unavailable(CellRouterError):
    """Something cellrouter needs (a cell, the API database, a queue) cannot be reached.

    The driver's own exception, when there is one, is ``__cause__``.
    """

    msg_fmt = "A required service is unavailable: {reason}"


class CellUnavailable(Unavailable):
    """A cell's database or message queue refused, timed out or dropped the connection.

    ``kwargs`` carry ``cell`` (its identity) and, when known, ``uuid`` and ``what``
    (``"database"`` or ``"queue"``).
    """

    msg_fmt = "Cell {cell} is unavailable: {reason}"

    @property
    def cell_uuid(self) -> str | None:
        return self.kwargs.get("uuid")


class ApiDatabaseUnavailable(Unavailable):
    msg_fmt = "The API database ([api_database]/connection = {url}) is unavailable: {reason}"


class DatabaseUnavailable(Unavailable):
    msg_fmt = "This service's database ([database]/connection = {url}) is unavailable: {reason}"


class InvalidSortKey(CellRouterError):
    msg_fmt = "Cannot sort on {key}: {reason}"


class InvalidMarker(CellRouterError):
    msg_fmt = "Marker {marker} not found."


class InvalidMaxCount(CellRouterError):
    msg_fmt = "max_count must be a positive integer, not {value!r}."


class UnknownRevision(CellRouterError):
    msg_fmt = "Unknown {tier} schema revision {revision!r} (known: {known})."


class MissingURL(ConfigurationError):
    msg_fmt = "No {kind} URL: pass {option} or set {config} in the configuration file."


class ConflictingOptions(CellRouterError):
    msg_fmt = "Options {options} cannot be used together."


class CellIsCell0(CellRouterError):
    msg_fmt = "Cell0 cannot be {action}: it only holds instances that failed to schedule."


class CellHasOnlyDeletedInstances(CellRouterError):
    msg_fmt = (
        "Cell {uuid} still has mappings of {count} deleted instance(s); delete the cell "
        "with --force to remove them with it."
    )


class HostInOtherCell(CellRouterError):
    msg_fmt = "Host {host} is mapped to cell {other}, not to cell {cell}."


class HostHasInstances(CellRouterError):
    msg_fmt = "Host {host} still has {count} instance(s) in cell {cell}."


class NoComputeHosts(CellRouterError):
    msg_fmt = "No compute hosts found in {where}: start the compute services first."
