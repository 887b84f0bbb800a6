"""Per-cell RPC: transports, clients and servers on each cell's own message queue.

Every cell has its own ``transport_url``; this module turns one into an
oslo.messaging transport, and builds RPC clients and servers whose targets are
isolated per cell. It is the only cellrouter module that imports
``oslo_messaging``.

oslo.messaging reads its options from the ``ConfigOpts`` a transport is built
with. cellrouter gives it a private, parsed one (:func:`messaging_conf`) rather
than the library's configuration: an embedding service may register
oslo.messaging's options on its own ``ConfigOpts`` and a second registration
there would clash. Driver settings therefore come from the transport URL's
query (``rabbit://...?heartbeat_timeout_threshold=0``), which oslo.messaging
applies over the ``[oslo_messaging_rabbit]`` defaults; a service's own
``[oslo_messaging_*]`` sections do not apply to cellrouter's transports.

Every target carries an exchange derived from the transport URL alone
(:func:`exchange_for`), so the API side and a cell's services, which only know
their own ``[DEFAULT]/transport_url``, agree on it without knowing cell uuids.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import sys
import threading
import warnings
import weakref
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from oslo_config import cfg

from cellrouter import exception, forksafe, workers
from cellrouter.url import mask_url

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service, which imports eventlet and some
    # deprecated eventlet helpers: nothing cellrouter uses, only noise.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
    import oslo_messaging
    from oslo_messaging import opts as _om_opts

__all__ = [
    "EXCHANGE_PREFIX",
    "BoundedRPCClient",
    "NO_TRANSPORT_SCHEME",
    "MessagingTimeout",
    "QueueOwner",
    "check_transport_url",
    "cleanup_transport",
    "create_transport",
    "exchange_for",
    "get_rpc_client",
    "get_rpc_server",
    "messaging_conf",
]

LOG = logging.getLogger(__name__)


EXCHANGE_PREFIX = "cellrouter"
"""Every exchange this module uses is this, or this + "." + a URL-derived suffix."""

NO_TRANSPORT_SCHEME = "none"
"""Scheme of a cell without a message queue (cell0's ``none:///``)."""

MessagingTimeout = oslo_messaging.MessagingTimeout
"""Raised by an RPC call that got no answer in time (callers need not import oslo_messaging)."""

# Target fields a caller may set through get_rpc_client's keywords; the
# exchange is never one of them (it is what isolates the cells).
_TARGET_KEYS = frozenset({"namespace", "version", "fanout", "legacy_namespaces"})

# oslo.messaging option lists that oslo_messaging.opts.list_opts() leaves out
# but that clients and servers read: without them the first cast or call fails
# with NoSuchOptError. Private modules, so each is optional (older releases
# may not have them; those do not read them either).
_EXTRA_OPT_LISTS = (
    ("oslo_messaging._metrics.client", "oslo_messaging_metrics", "oslo_messaging_metrics"),
    ("oslo_messaging._tracing.client", "oslo_messaging_tracing", "oslo_messaging_tracing"),
)


def _build_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in _om_opts.list_opts():
        conf.register_opts(opts, group=group)
    for module_name, attr, group in _EXTRA_OPT_LISTS:
        try:
            opts = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
        conf.register_opts(opts, group=group)
    # Parsed with no arguments and no files: the defaults, overridden per transport by
    # its URL query (and, as oslo.config allows, OS_<GROUP>__<OPTION> variables).
    conf(args=[], project="cellrouter-messaging", default_config_files=[], default_config_dirs=[])
    return conf


_conf = _build_conf()
_create_lock = forksafe.Lock()
_masked_urls: weakref.WeakKeyDictionary[oslo_messaging.Transport, str] = weakref.WeakKeyDictionary()


def messaging_conf() -> cfg.ConfigOpts:
    """The private, parsed ``ConfigOpts`` every transport of this module is built with."""
    return _conf


def _invalid(url: str, reason: str) -> exception.InvalidURL:
    return exception.InvalidURL(kind="transport", url=mask_url(url), reason=mask_url(reason))


def _parse(url: str) -> oslo_messaging.TransportURL:
    try:
        return oslo_messaging.TransportURL.parse(_conf, url)
    except (oslo_messaging.InvalidTransportURL, ValueError, TypeError) as exc:
        raise _invalid(url, f"{type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=1)
def _known_drivers() -> frozenset[str]:
    from importlib.metadata import entry_points

    return frozenset(ep.name for ep in entry_points(group="oslo.messaging.drivers"))


def check_transport_url(url: str) -> None:
    """Raise :class:`~cellrouter.exception.InvalidURL` (masked) unless oslo.messaging
    parses ``url`` and knows its driver. ``none:///`` (no queue) is accepted.

    Nothing connects: this is the write-time check of a cell's transport URL.
    """
    if not url:
        raise _invalid(url or "", "empty URL")
    if _is_none_url(url):
        return
    parsed = _parse(url)
    driver = parsed.transport.split("+")[0] if parsed.transport else ""
    if driver not in _known_drivers():
        known = ", ".join(sorted(_known_drivers()))
        raise _invalid(url, f"unknown transport driver {driver!r} (known: {known})")


def _is_none_url(url: str) -> bool:
    try:
        return urlsplit(url).scheme.lower() == NO_TRANSPORT_SCHEME
    except ValueError:
        return False


def _safe(text: str) -> str:
    # Keep [A-Za-z0-9_-]; every other UTF-8 byte becomes ":xx". Injective, and
    # only characters AMQP 0-9-1 allows in exchange names.
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        out.append(char if char.isascii() and (char.isalnum() or char in "_-") else f":{byte:02x}")
    return "".join(out)


@functools.lru_cache(maxsize=256)
def exchange_for(url: str) -> str:
    """The exchange every target of the cell behind ``url`` uses.

    ``"cellrouter"`` when the URL has no virtual host (or RabbitMQ's default
    ``/``), else ``"cellrouter."`` + a safe form of the virtual host. For
    ``fake://``, which has no broker (every fake URL of a process shares one
    in-memory exchange table), the host names are part of it too, standing in
    for separate brokers: ``fake://cell1/`` -> ``"cellrouter.cell1"``.
    Credentials, ports and the query never matter.
    """
    parsed = _parse(url)
    parts: list[str] = []
    if parsed.transport.split("+")[0] == "fake":
        hosts = ",".join(host.hostname or "" for host in parsed.hosts)
        if hosts:
            parts.append(hosts)
    vhost = parsed.virtual_host or ""
    if vhost and vhost != "/":
        parts.append(vhost)
    if not parts:
        return EXCHANGE_PREFIX
    name = ".".join([EXCHANGE_PREFIX, *(_safe(part) for part in parts)])
    if len(name) > 255:  # AMQP short string
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]
        name = f"{name[:200]}:{digest}"
    return name


def create_transport(
    url: str, *, allowed_remote_exmods: Sequence[str] | None = None
) -> oslo_messaging.Transport | None:
    """The RPC transport of the cell behind ``url``; None for ``none:///`` (no queue).

    Nothing connects yet: drivers connect on first use. Raises
    :class:`~cellrouter.exception.InvalidURL` (masked) for a URL no driver
    accepts, unknown or malformed driver options in its query included.
    """
    if not url:
        raise _invalid(url or "", "empty URL")
    if _is_none_url(url):
        return None
    parsed = _parse(url)
    try:
        with _create_lock:  # drivers register options on the shared conf
            transport = oslo_messaging.get_rpc_transport(
                _conf, parsed, allowed_remote_exmods=list(allowed_remote_exmods or [])
            )
    except oslo_messaging.DriverLoadFailure as exc:
        raise _invalid(url, f"no transport driver {parsed.transport!r}: {exc.ex}") from None
    except ImportError as exc:
        raise _invalid(url, f"driver {parsed.transport!r} cannot be loaded: {exc}") from None
    except cfg.NoSuchOptError as exc:
        raise _invalid(url, f"unknown driver option {exc.opt_name!r} in the query") from None
    except (cfg.Error, ValueError, TypeError) as exc:
        raise _invalid(url, f"{type(exc).__name__}: {exc}") from None
    _masked_urls[transport] = mask_url(url)
    return transport


def _require_transport(transport: oslo_messaging.Transport | None, url: str) -> None:
    if transport is None:
        raise exception.CellHasNoQueue(cell=f"at {mask_url(url)}")


def get_rpc_client(
    transport: oslo_messaging.Transport,
    url: str,
    topic: str,
    server: str | None = None,
    **kw: Any,
) -> oslo_messaging.RPCClient:
    """An RPC client for ``topic`` (and ``server``) in the cell behind ``url``.

    ``url`` must be the one ``transport`` was created from: it gives the
    exchange. Keywords ``namespace``, ``version``, ``fanout`` and
    ``legacy_namespaces`` go to the target; the others (``timeout``,
    ``version_cap``, ``serializer``, ``retry``, ``call_monitor_timeout``,
    ``transport_options``) to the client. ``exchange`` is refused (InvalidValue),
    and a cell without a queue (``transport`` None) raises CellHasNoQueue.
    """
    _require_transport(transport, url)
    if "exchange" in kw:
        raise exception.InvalidValue(
            what="keyword 'exchange'", reason="the exchange is derived from the URL alone"
        )
    target_kw = {key: kw.pop(key) for key in list(kw) if key in _TARGET_KEYS}
    target = oslo_messaging.Target(
        exchange=exchange_for(url), topic=topic, server=server, **target_kw
    )
    return oslo_messaging.get_rpc_client(transport, target, **kw)


class QueueOwner(Protocol):
    """Who a :class:`BoundedRPCClient` reports its broker's health to (a cell)."""

    def queue_refused(self) -> BaseException | None:
        """An error to raise at once instead of sending (queue known down), or None."""

    def queue_failed(self, error: BaseException | None) -> BaseException:
        """The error to raise for a failed send (``error`` None: it timed out)."""

    def queue_succeeded(self) -> None:
        """A send reached the broker."""


def _is_broker_error(exc: BaseException) -> bool:
    """True when ``exc`` says the broker could not be reached (not: no reply, no consumer)."""
    if isinstance(exc, oslo_messaging.MessageDeliveryFailure | OSError):
        return True
    return type(exc).__module__.partition(".")[0] in ("kombu", "amqp")


class BoundedRPCClient:
    """An RPC client whose casts and calls return or fail within a time bound.

    oslo.messaging retries a broken broker forever unless told otherwise, and
    a publish waiting for the broker's confirm blocks as long as its socket
    lets it. So every send gets ``retry`` and runs on a worker thread
    (:mod:`cellrouter.workers`); the caller waits at most ``send_timeout``
    (a call: plus its reply timeout). An unreachable broker raises what the
    owner's ``queue_failed`` returns; a call that gets no reply still raises
    :data:`MessagingTimeout`.
    """

    __slots__ = ("_client", "_owner", "_reply_timeout", "_send_timeout")

    def __init__(
        self,
        client: Any,
        owner: QueueOwner,
        send_timeout: float,
        reply_timeout: float | None = None,
    ) -> None:
        self._client = client
        self._owner = owner
        self._send_timeout = send_timeout
        self._reply_timeout = reply_timeout

    def prepare(self, **kw: Any) -> BoundedRPCClient:
        """A copy with other target or call options (oslo.messaging's ``prepare``)."""
        reply_timeout = kw.get("timeout", self._reply_timeout)
        return BoundedRPCClient(
            self._client.prepare(**kw), self._owner, self._send_timeout, reply_timeout
        )

    def can_send_version(self, version: str) -> bool:
        return bool(self._client.can_send_version(version))

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Send ``method(**kwargs)`` without waiting for a result."""
        self._bounded(self._send_timeout, self._client.cast, ctxt, method, **kwargs)

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Send ``method(**kwargs)`` and return its result."""
        reply = self._reply_timeout
        if reply is None:
            reply = _conf.rpc_response_timeout
        return self._bounded(self._send_timeout + reply, self._client.call, ctxt, method, **kwargs)

    def _bounded(self, bound: float, send: Any, *args: Any, **kwargs: Any) -> Any:
        refused = self._owner.queue_refused()
        if refused is not None:
            raise refused
        done = threading.Event()
        outcome: list[tuple[bool, Any]] = []

        def job() -> None:
            try:
                outcome.append((True, send(*args, **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome.append((False, exc))
            finally:
                done.set()

        workers.submit(job)
        if not done.wait(bound):
            raise self._owner.queue_failed(None)
        ok, value = outcome[0]
        if ok:
            self._owner.queue_succeeded()
            return value
        if _is_broker_error(value):
            raise self._owner.queue_failed(value) from value
        raise value


def _default_executor() -> str:
    # What oslo.messaging picks by itself; passing it explicitly only earns a
    # DeprecationWarning.
    eventlet = sys.modules.get("eventlet")
    patcher = getattr(eventlet, "patcher", None)
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return "eventlet"
    return "threading"


def get_rpc_server(
    transport: oslo_messaging.Transport,
    url: str,
    topic: str,
    server: str,
    endpoints: list[Any],
    executor: str | None = "threading",
    *,
    serializer: oslo_messaging.Serializer | None = None,
    access_policy: Any = None,
) -> oslo_messaging.MessageHandlingServer:
    """An RPC server for ``(topic, server)`` in the cell behind ``url`` (not started).

    It also consumes ``topic`` casts addressed to no particular server. The
    caller starts it, and at shutdown calls ``stop()`` then ``wait()``.
    ``executor`` None lets oslo.messaging choose. A cell without a queue
    (``transport`` None) raises CellHasNoQueue.
    """
    _require_transport(transport, url)
    target = oslo_messaging.Target(exchange=exchange_for(url), topic=topic, server=server)
    extra: dict[str, Any] = {}
    if executor is not None and executor != _default_executor():
        extra["executor"] = executor
    return oslo_messaging.get_rpc_server(
        transport,
        target,
        endpoints,
        serializer=serializer,
        access_policy=access_policy,
        **extra,
    )


def cleanup_transport(transport: oslo_messaging.Transport | None) -> None:
    """Release ``transport`` (connections, heartbeat threads); never raises.

    None (a cell without a queue) is accepted. Note that on ``fake://`` any
    cleanup empties the one in-memory exchange table every fake transport of
    the process shares.
    """
    if transport is None:
        return
    try:
        masked = _masked_urls.pop(transport, "<transport>")
    except TypeError:  # not weak-referenceable: not one of ours
        masked = "<transport>"
    try:
        transport.cleanup()
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort
        LOG.debug("Cleaning up transport %s failed: %s", masked, mask_url(str(exc)))
