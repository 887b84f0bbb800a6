"""Every error cellrouter raises, all under :class:`CellRouterError`.

An API service maps them to HTTP statuses with four checks:

* :class:`NotFound` -> 404: the named cell, instance, host or build request
  is not there.
* :class:`Conflict` -> 409: the request clashes with what is stored (it
  exists already, it still holds something, it is cell0, it has no queue).
* :class:`Invalid` -> 400: the caller passed a bad value (URL, sort key,
  marker, count, revision, option combination).
* :class:`Unavailable` -> 503: a database or message queue cellrouter needs
  cannot be reached right now; a retry may succeed.

Deliberately under none of the four (an API decides, or it is a 500):

* :class:`ConfigurationError` (with :class:`MissingConnection`,
  :class:`MissingURL`, :class:`UnsupportedBackend`) -> 500: this deployment's
  configuration is wrong, not the request.
* :class:`UpcallForbidden` -> 500: a cell-level service's code reached for the
  API database; a bug or a deployment mistake, never the caller's.
* :class:`InstanceNotScheduled` -> the caller's choice: the instance exists
  but is still building, so a read answers from its BuildRequest and an
  action on it is a 409.

Messages are safe to print and log: they never carry a clear-text secret
(URLs are masked before they get here). They name library arguments and
configuration options, never command-line flags: the CLI adds its own hints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "ApiDatabaseUnavailable",
    "BuildRequestExists",
    "BuildRequestNotFound",
    "CellHasHosts",
    "CellHasInstances",
    "CellHasNoQueue",
    "CellHasOnlyDeletedInstances",
    "CellIsCell0",
    "CellMappingExists",
    "CellMappingNotFound",
    "CellRouterError",
    "CellDatabaseMissing",
    "CellUnavailable",
    "ConfigurationError",
    "Conflict",
    "ConflictingOptions",
    "ConnectionsReleased",
    "DatabaseUnavailable",
    "DuplicateCellURL",
    "HostHasInstances",
    "HostInOtherCell",
    "HostMappingExists",
    "HostMappingNotFound",
    "InstanceMappingExists",
    "InstanceMappingNotFound",
    "InstanceNotFound",
    "InstanceNotOnHost",
    "InstanceNotScheduled",
    "Invalid",
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
    "UnsupportedBackend",
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


# -- the four bases an API maps to HTTP statuses ----------------------------------


class NotFound(CellRouterError):
    """HTTP 404: what the request names does not exist."""

    msg_fmt = "Not found."


class Conflict(CellRouterError):
    """HTTP 409: the request clashes with the current state of what it names."""

    msg_fmt = "The request conflicts with the current state: {reason}"


class Invalid(CellRouterError):
    """HTTP 400: the caller passed a bad value."""

    msg_fmt = "Invalid request: {reason}"


class Unavailable(CellRouterError):
    """HTTP 503: something cellrouter needs (a cell, the API database, a queue)
    cannot be reached right now.

    The driver's own exception, when there is one, is ``__cause__``.
    """

    msg_fmt = "A required service is unavailable: {reason}"


# -- outside the four: configuration and misuse ------------------------------------


class ConfigurationError(CellRouterError):
    msg_fmt = "Invalid configuration: {reason}"


class MissingConnection(ConfigurationError):
    msg_fmt = "Option [{group}]/{option} is not set; set it in the configuration file."


class MissingURL(ConfigurationError):
    """No URL was given and its configuration option is unset.

    ``option`` names the argument that would have given it (the caller's
    word for it, e.g. a CLI flag): it stays in ``kwargs`` for the caller to
    hint at and is not part of the message.
    """

    msg_fmt = "No {kind} URL: none was given and {config} is not set in the configuration file."


class UnsupportedBackend(ConfigurationError):
    msg_fmt = "The {backend} database backend is not supported for {what} (supported: {supported})."


class UpcallForbidden(CellRouterError):
    msg_fmt = (
        "This service is configured as a cell-level service ([database]/connection "
        "without [api_database]/connection) and must not reach the API database: {what}"
    )


class InstanceNotScheduled(CellRouterError):
    msg_fmt = "Instance {uuid} is still building: its mapping has no cell yet."


# -- Invalid (400) ----------------------------------------------------------------


class InvalidValue(Invalid, ValueError):
    """A bad argument (also a ValueError, for callers that catch those)."""

    msg_fmt = "Invalid {what}: {reason}"

    @classmethod
    def require(cls, **values: object) -> None:
        """Raise for the first of ``values`` that is missing (None or empty)."""
        for name, value in values.items():
            if value is None or value == "":
                raise cls(what=name, reason="a value is required")


class InvalidURL(Invalid):
    msg_fmt = "Invalid {kind} URL {url}: {reason}"


class InvalidSortKey(Invalid):
    msg_fmt = "Cannot sort on {key}: {reason}"


class InvalidMarker(Invalid):
    msg_fmt = "Marker {marker} not found."


class InvalidMaxCount(Invalid):
    msg_fmt = "max_count must be a positive integer, not {value!r}."


class UnknownRevision(Invalid):
    msg_fmt = "Unknown {tier} schema revision {revision!r} (known: {known})."


class ConflictingOptions(Invalid):
    """``options``: a text, or the names of the arguments (joined with "and")."""

    msg_fmt = "Options {options} cannot be used together."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        options = kwargs.get("options")
        if message is None and isinstance(options, Sequence) and not isinstance(options, str):
            message = self.msg_fmt.format(**{**kwargs, "options": " and ".join(options)})
        super().__init__(message, **kwargs)


# -- NotFound (404) ---------------------------------------------------------------


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


# -- Conflict (409) ---------------------------------------------------------------


class CellMappingExists(Conflict):
    msg_fmt = "Cell {uuid} already exists."


class DuplicateCellURL(Conflict):
    msg_fmt = "Cell {other} already uses this {kind} URL."


class HostMappingExists(Conflict):
    msg_fmt = "Host {host} is already mapped to cell {cell}."


class BuildRequestExists(Conflict):
    msg_fmt = "Instance {uuid} already has a build request."


class InstanceMappingExists(Conflict):
    msg_fmt = "Instance {uuid} already has a mapping."


class CellHasHosts(Conflict):
    msg_fmt = "Cell {uuid} still has hosts mapped."


class CellHasInstances(Conflict):
    msg_fmt = "Cell {uuid} still has instances."


class CellHasOnlyDeletedInstances(Conflict):
    msg_fmt = (
        "Cell {uuid} still has mappings of {count} deleted instance(s); deleting the "
        "cell with force=True removes them with it."
    )


class CellIsCell0(Conflict):
    msg_fmt = "Cell0 cannot be {action}: it only holds instances that failed to schedule."


class CellHasNoQueue(Conflict):
    """RPC to a cell without a message queue (cell0: ``none:///``)."""

    msg_fmt = "Cell {cell} has no message queue: nothing can be sent to it."


class HostInOtherCell(Conflict):
    msg_fmt = "Host {host} is mapped to cell {other}, not to cell {cell}."


class HostHasInstances(Conflict):
    msg_fmt = "Host {host} still has {count} instance(s) in cell {cell}."


class InstanceNotOnHost(Conflict):
    """RPC to an instance's compute host, but the instance is on none (never
    placed, or failed to schedule)."""

    msg_fmt = "Instance {uuid} is not on a compute host in cell {cell}."


class NoComputeHosts(Conflict):
    msg_fmt = "No compute hosts found in {where}: start the compute services first."


# -- Unavailable (503) ------------------------------------------------------------


class CellUnavailable(Unavailable):
    """A cell's database or message queue refused, timed out or dropped the connection.

    ``kwargs`` carry ``cell`` (its identity) and, when known, ``uuid`` and ``what``
    (``"database"`` or ``"queue"``).
    """

    msg_fmt = "Cell {cell} is unavailable: {reason}"

    @property
    def cell_uuid(self) -> str | None:
        return self.kwargs.get("uuid")


class CellDatabaseMissing(CellUnavailable):
    """A cell's database server answers, but the database does not exist on it.

    ``kwargs`` also carry ``database``: the name of the database to create.
    """

    msg_fmt = (
        "Cell {cell} is unavailable: its database {database} does not exist on the "
        "database server: create it"
    )


class ApiDatabaseUnavailable(Unavailable):
    msg_fmt = "The API database ([api_database]/connection = {url}) is unavailable: {reason}"


class DatabaseUnavailable(Unavailable):
    msg_fmt = "This service's database ([database]/connection = {url}) is unavailable: {reason}"


class ConnectionsReleased(Unavailable):
    """A context kept a cell's connections after the registry released them."""

    msg_fmt = (
        "The connections of cell {cell} were released (the cell changed or was deleted): "
        "target the cell again."
    )
