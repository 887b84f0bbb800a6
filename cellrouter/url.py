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

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# In free text: scheme://netloc, netloc possibly several comma-separated
# user:pass@host:port. A password may hold any character but a newline
# (SQLAlchemy accepts / ? # ' " < > and spaces unescaped), so the userinfo runs
# to the last @ of the line: masking too much is safe, too little is not.
_URL_RE = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<netloc>(?:[^@\n]*@)?[^/?#\s\"'<>]*)"
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


def _mask_authority(authority: str) -> str:
    """``user:pass@host[,user:pass@host...]`` with every password masked."""
    parts = authority.split(",")
    with_userinfo = sum("@" in part for part in parts)
    if 0 < with_userinfo < len(parts):
        # a comma inside a password: hide everything from the first password on
        user, colon, _ = authority.partition(":")
        return f"{user}:{MASK}@{authority.rpartition('@')[2]}" if colon else authority
    masked = []
    for part in parts:
        userinfo, at, hostport = part.rpartition("@")
        if at and ":" in userinfo:
            part = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
        masked.append(part)
    return ",".join(masked)


def _mask_netloc(match: re.Match[str]) -> str:
    return match.group("scheme") + _mask_authority(match.group("netloc"))


def _mask_whole_url(url: str, scheme_end: int) -> str:
    """One URL, masked by structure: its password may hold any character, spaces too."""
    rest = url[scheme_end:]
    at = rest.rfind("@")
    if at == -1:
        return url
    host_end = at + 1
    while host_end < len(rest) and rest[host_end] not in "/?#":
        host_end += 1
    return url[:scheme_end] + _mask_authority(rest[:host_end]) + rest[host_end:]


def mask_url(text: str | None) -> str:
    """``text`` with every password hidden: in each host of every URL it holds,
    and in ``password=``-style query parameters. Safe on any string."""
    if not text:
        return text or ""
    if "://" in text:
        whole = _SCHEME_RE.match(text)
        if whole is not None and "\n" not in text:
            text = _mask_whole_url(text, whole.end())
        else:
            text = _URL_RE.sub(_mask_netloc, text)
    return _SECRET_PARAM_RE.sub(lambda m: m.group("key") + MASK, text)
