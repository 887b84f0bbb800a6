"""Cell URLs: templates formatted from this service's configuration, and masking.

A cell's ``database_connection`` and ``transport_url`` are stored as given and
may be templates such as ``mysql+pymysql://{username}:{password}@db7/{path}``.
They are formatted on read with the parts of ``[database]/connection`` or
``[DEFAULT]/transport_url``: ``{scheme} {username} {password} {hostname}
{port} {path} {query} {fragment}``, plus ``{username1} {password1}
{hostname1} {port1}``... for each host of a multi-host URL.

:func:`mask_url` is the one place that hides secrets: every repr, log line and
listing goes through it.
"""

from __future__ import annotations

import functools
import re
import string
from urllib.parse import urlsplit

from cellrouter import exception

__all__ = ["MASK", "format_url", "mask_url", "url_parts"]

MASK = "****"

# scheme://netloc where netloc may hold several comma-separated user:pass@host:port;
# a password may hold unescaped / ? # (SQLAlchemy accepts them), so the userinfo
# runs to the last @ of the URL.
_URL_RE = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)"
    r"(?P<netloc>(?:[^@\s\"'<>]*@)?[^/?#\s\"'<>]*)"
)
_SECRET_PARAM_RE = re.compile(
    r"(?P<key>(?:^|(?<=[?&;,(\s]))[A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api_key"
    r"|apikey|credential)[A-Za-z0-9_.\-]*=)(?P<value>[^&;#\s\"']*)",
    re.IGNORECASE,
)


def _split_netloc(netloc: str) -> dict[str, str]:
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        userinfo, hostport = "", netloc
    username, colon, password = userinfo.partition(":")
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    return {
        "username": username,
        "password": password if colon else "",
        "hostname": host,
        "port": port,
    }


@functools.lru_cache(maxsize=256)
def url_parts(url: str) -> dict[str, str]:
    """The template values of ``url`` (empty strings for absent parts)."""
    split = urlsplit(url)
    parts: dict[str, str] = {
        "scheme": split.scheme,
        "path": split.path.lstrip("/"),
        "query": split.query,
        "fragment": split.fragment,
    }
    netlocs = split.netloc.split(",")
    parts.update(_split_netloc(netlocs[0]))
    if len(netlocs) > 1:
        for index, netloc in enumerate(netlocs, start=1):
            for key, value in _split_netloc(netloc).items():
                parts[f"{key}{index}"] = value
    return parts


_formatter = string.Formatter()


@functools.lru_cache(maxsize=1024)
def format_url(template: str, default: str | None, kind: str = "database") -> str:
    """``template`` with its ``{field}`` placeholders filled from ``default``.

    A template without placeholders is returned unchanged. Unknown fields,
    or fields the default URL does not have, raise
    :class:`~cellrouter.exception.InvalidURL` (masked).
    """
    if "{" not in template:
        return template
    try:
        fields = {name for _, name, _, _ in _formatter.parse(template) if name is not None}
    except ValueError as exc:
        raise exception.InvalidURL(kind=kind, url=mask_url(template), reason=str(exc)) from None
    if not default:
        raise exception.InvalidURL(
            kind=kind,
            url=mask_url(template),
            reason="it is a template but this service has no configured "
            f"{'[database]/connection' if kind == 'database' else '[DEFAULT]/transport_url'}"
            " to fill it from",
        )
    parts = url_parts(default)
    unknown = sorted(f for f in fields if f not in parts)
    if unknown:
        raise exception.InvalidURL(
            kind=kind,
            url=mask_url(template),
            reason="unknown template field(s) " + ", ".join("{" + f + "}" for f in unknown),
        )
    return template.format_map(parts)


def _mask_netloc(match: re.Match[str]) -> str:
    masked = []
    for netloc in match.group("netloc").split(","):
        userinfo, at, hostport = netloc.rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.partition(":")[0]
            netloc = f"{user}:{MASK}@{hostport}"
        masked.append(netloc)
    return match.group("scheme") + ",".join(masked)


def mask_url(text: str | None) -> str:
    """``text`` with every password hidden: in each host of every URL it holds,
    and in ``password=``-style query parameters. Safe on any string."""
    if not text:
        return text or ""
    if "://" in text:
        text = _URL_RE.sub(_mask_netloc, text)
    return _SECRET_PARAM_RE.sub(lambda m: m.group("key") + MASK, text)
