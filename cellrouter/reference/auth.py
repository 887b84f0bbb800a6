"""The caller of a reference API request: keystonemiddleware's headers, or a fixed noauth caller.

Behind keystonemiddleware's ``auth_token`` filter, a request that reaches the
application carries its token's identity in headers the filter sets itself
(after dropping any the client sent): ``X-Project-Id``, ``X-User-Id``,
``X-Roles`` (comma-separated) and ``X-Identity-Status`` (``Invalid`` when the
filter runs with ``delay_auth_decision`` and the token was bad).
:meth:`Auth.caller` turns them into the request's
:class:`cellrouter.RequestContext`; a request without a project is not
authenticated (:class:`werkzeug.exceptions.Unauthorized`, HTTP 401), as Nova
answers a request keystonemiddleware let through without a token.

``[reference_api]/auth_strategy = noauth`` is for a demo or a test on one
machine, without Keystone (Nova's ``noauth2``): a request that names no
project is the fixed caller ``noauth_project`` / ``noauth_user`` with
``noauth_roles``; headers a request does send are honoured as
keystonemiddleware's would be, so one client can act as several projects.
Never expose it to a network.

The ``admin`` role (Nova's default policy, ``role:admin``) makes the context
``is_admin``: it sees every project.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from oslo_config import cfg
from werkzeug.exceptions import Unauthorized

import cellrouter
from cellrouter import exception

__all__ = ["ADMIN_ROLE", "AUTH_STRATEGIES", "GROUP", "HEADERS", "OPTS", "Auth", "register_opts"]

#: the role that makes a caller an administrator of every project
ADMIN_ROLE = "admin"
AUTH_STRATEGIES = ("keystone", "noauth")
#: the headers keystonemiddleware sets that :meth:`Auth.caller` reads
HEADERS = ("X-Identity-Status", "X-Project-Id", "X-User-Id", "X-Roles")
#: the reference API's own option group in ``api.conf``
GROUP = "reference_api"

OPTS = [
    cfg.StrOpt(
        "auth_strategy",
        default="keystone",
        choices=[
            ("keystone", "the caller comes from keystonemiddleware's X-* headers"),
            ("noauth", "a request naming no project is the fixed noauth caller (demos, tests)"),
        ],
        help="How the reference API identifies its callers.",
    ),
    cfg.StrOpt(
        "noauth_project", default="demo", help="noauth: the project of a request naming none."
    ),
    cfg.StrOpt("noauth_user", default="demo", help="noauth: the user of a request naming none."),
    cfg.ListOpt(
        "noauth_roles", default=[ADMIN_ROLE], help="noauth: the roles of a request naming none."
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``[reference_api]`` on ``conf`` (again is harmless)."""
    conf.register_opts(OPTS, group=GROUP)


def _roles(text: str) -> tuple[str, ...]:
    return tuple(role.strip() for role in text.split(",") if role.strip())


@dataclasses.dataclass(frozen=True, slots=True)
class Auth:
    """How the API identifies callers; for ``noauth``, the caller of a request naming none."""

    strategy: str = "keystone"
    project_id: str | None = None
    user_id: str | None = None
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.strategy not in AUTH_STRATEGIES:
            raise exception.InvalidValue(
                what="auth_strategy", reason=f"one of {', '.join(AUTH_STRATEGIES)}"
            )
        if self.strategy == "noauth" and not (self.project_id or "").strip():
            raise exception.InvalidValue(
                what="noauth_project", reason="noauth needs a non-empty project"
            )

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts | None = None) -> Auth:
        """The settings of ``[reference_api]`` in ``conf`` (default ``cellrouter.CONF``)."""
        conf = conf if conf is not None else cellrouter.CONF
        register_opts(conf)
        group = conf[GROUP]
        if group.auth_strategy == "noauth":
            return cls(
                "noauth", group.noauth_project, group.noauth_user or None, tuple(group.noauth_roles)
            )
        return cls("keystone")

    def describe(self) -> str:
        """One line for a log or a demo's output."""
        if self.strategy == "keystone":
            return "keystone: the caller comes from keystonemiddleware's X-Project-Id/X-Roles"
        return (
            f"noauth: a request without X-Project-Id is project {self.project_id!r} "
            f"(user {self.user_id!r}, roles {', '.join(self.roles) or 'none'})"
        )

    def caller(
        self, headers: Mapping[str, str], request_id: str | None = None
    ) -> cellrouter.RequestContext:
        """The request's context from its :data:`HEADERS`; Unauthorized (401) without a project."""
        if headers.get("X-Identity-Status", "Confirmed").strip().lower() == "invalid":
            raise Unauthorized("The request's token is not valid (X-Identity-Status: Invalid).")
        project = (headers.get("X-Project-Id") or "").strip()
        user: str | None = (headers.get("X-User-Id") or "").strip() or None
        roles = _roles(headers.get("X-Roles", ""))
        if not project and self.strategy == "noauth":
            project, user, roles = self.project_id or "", self.user_id, self.roles
        if not project:
            raise Unauthorized(
                "The request has no project: the API expects keystonemiddleware's "
                "X-Project-Id (and X-User-Id, X-Roles) headers."
            )
        return cellrouter.RequestContext(
            user_id=user,
            project_id=project,
            is_admin=ADMIN_ROLE in {role.lower() for role in roles},
            request_id=request_id,
        )
