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

__all__ = ["MASK", "check_url", "format_url", "mask_url", "url_parts"]

MASK = "****"

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# In free text: scheme://netloc, netloc possibly several comma-separated
# user:pass@host:port. A password may hold any character but a newline
# (SQLAlchemy accepts / ? # ' " < > and spaces unescaped), so the userinfo runs
# to the last @ of the line: masking too much is safe, too little is not.
_URL_RE = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<netloc>(?:[^@\n]*@)?[^/?#\s\"'<>]*)"
)
# Userinfo in text without "://" (``rabbit//admin:pw@mq/``, ``admin:pw@mq``): a
# user (maybe empty) that starts a word or follows a delimiter, ":", then
# everything up to the word's last "@". ":" followed by "//" is a scheme, and
# words that are URLs (masked by structure before) are skipped whole.
_USERINFO_RE = re.compile(
    r"(?P<url>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*)"
    r"|(?<![^\s'\"`(<\[{,;=/|@])(?P<user>[^\s'\"`<>@:/]*):(?!//)(?P<password>\S+)@"
)
# A quoted host that carries the tail of a password holding an unencoded "@":
# drivers print ``Can't connect to MySQL server on 'TAIL@127.0.0.1'``.
_QUOTED_TAIL_RE = re.compile(r"(?P<quote>['\"])[^'\"\s/:?]+@(?P<host>[^'\"\s@]*)(?P=quote)")
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


def _mask_userinfo(match: re.Match[str]) -> str:
    if match.group("url") is not None:
        return match.group("url")
    return f"{match.group('user')}:{MASK}@"


def _mask_quoted_tail(match: re.Match[str]) -> str:
    quote = match.group("quote")
    return f"{quote}{MASK}@{match.group('host')}{quote}"


def mask_url(text: str | None) -> str:
    """``text`` with every password hidden: in each host of every URL it holds,
    in userinfo without a scheme (``rabbit//user:pw@mq/``, ``user:pw@host``),
    in quoted hosts that carry a password's tail (``'tail@127.0.0.1'``, as
    drivers print a URL whose password holds an unencoded ``@``), and in
    ``password=``-style query parameters. Safe on any string."""
    if not text:
        return text or ""
    if "@" in text:  # no "@": no userinfo anywhere
        if "://" in text:
            whole = _SCHEME_RE.match(text)
            if whole is not None and "\n" not in text:
                text = _mask_whole_url(text, whole.end())
            else:
                text = _URL_RE.sub(_mask_netloc, text)
        text = _USERINFO_RE.sub(_mask_userinfo, text)
        if "'" in text or '"' in text:
            text = _QUOTED_TAIL_RE.sub(_mask_quoted_tail, text)
    if "=" in text:
        text = _SECRET_PARAM_RE.sub(lambda m: m.group("key") + MASK, text)
    return text


# -- validation ----------------------------------------------------------------------

#: What a template placeholder stands for while its structure is checked: one
#: character valid anywhere (scheme, userinfo, host, port, path).
_TOKEN = "\ue000"
_PLACEHOLDER_RE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_CHECK_SCHEME_RE = re.compile("[A-Za-z\ue000][A-Za-z0-9+.\\-\ue000]*://")
_PORT_RE = re.compile("[0-9\ue000]*")
#: where the authority of a text that may lack (part of) "SCHEME://" starts
_LEAD_RE = re.compile(r"[^/@:?#\s]*:?//")
_ENCODE_HINT = "percent-encode it: '@' -> %40, ':' -> %3A, '/' -> %2F, '?' -> %3F, '#' -> %23"


def _mask_invalid(url: str) -> str:
    """``url`` masked for the message of a URL that did not parse: besides what
    :func:`mask_url` hides, every non-numeric ``:suffix`` of its authority (it
    may be a password whose ``@`` is missing)."""
    masked = mask_url(url)
    lead = _LEAD_RE.match(masked)
    start = lead.end() if lead is not None else 0
    end = start
    while end < len(masked) and masked[end] not in "/?#":
        end += 1
    parts = []
    for part in masked[start:end].split(","):
        userinfo, at, hostport = part.rpartition("@")
        host, *ports = hostport.split(":")
        ports = [
            p if p == MASK or _PORT_RE.fullmatch(_PLACEHOLDER_RE.sub(_TOKEN, p)) else MASK
            for p in ports
        ]
        parts.append(userinfo + at + ":".join([host, *ports]))
    return masked[:start] + ",".join(parts) + masked[end:]


def _check_hostport(hostport: str) -> str | None:
    """Why ``host[:port]`` is invalid, or None."""
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or "[" in host:
            return "unbalanced '[' in the host (an IPv6 address is written [addr]:port)"
        if rest and not rest.startswith(":"):
            return "unexpected text after the ']' of an IPv6 host"
        port = rest[1:]
    else:
        if "]" in hostport or "[" in hostport:
            return "unbalanced ']' in the host (an IPv6 address is written [addr]:port)"
        host, _, port = hostport.partition(":")
        if ":" in port:
            return "too many ':' in host:port (an IPv6 address is written [addr]:port)"
    if not _PORT_RE.fullmatch(port):
        return "the port is not a number (if it is a password, the '@' after it is missing)"
    return None


def _structure_error(text: str) -> str | None:
    """Why ``text`` (placeholders replaced by a token) is not a well-formed URL, or None."""
    scheme = _CHECK_SCHEME_RE.match(text)
    if scheme is None:
        sep = text.find("://")
        if sep > 0 and not any(c in text[:sep] for c in "/@:?#"):
            return "invalid scheme (expected letters, digits, '+', '-' or '.')"
        return "missing '://' after the scheme (expected SCHEME://[user:password@]host/...)"
    rest = text[scheme.end() :]
    end = len(rest)
    for delimiter in "/?#":
        found = rest.find(delimiter)
        if found != -1:
            end = min(end, found)
    authority, tail = rest[:end], rest[end:]
    if "@" not in authority and ":" in authority and "@" in tail:
        # SQLAlchemy reads everything up to that "@" as user:password
        return (
            f"a '{tail[0]}' before the '@' ends the host: if it is part of the password, "
            f"{_ENCODE_HINT}; if the '@' is not, write it as %40"
        )
    for part in authority.split(","):
        userinfo, at, hostport = part.partition("@") if "@" in part else ("", "", part)
        if "@" in hostport:
            return f"unencoded '@' in the user name or password ({_ENCODE_HINT})"
        if at and userinfo.count(":") > 1:
            return f"unencoded ':' in the password ({_ENCODE_HINT})"
        reason = _check_hostport(hostport)
        if reason is not None:
            return reason
    return None


def check_url(url: str, kind: str) -> None:
    """Raise :class:`~cellrouter.exception.InvalidURL` unless ``url`` is well formed.

    ``kind`` is ``"database"`` or ``"transport"``. Checks the structure only
    (nothing is imported, resolved or connected): ``SCHEME://``, at most one
    ``@`` and one ``:`` in each host's userinfo (a password holding ``@ : / ? #``
    must be percent-encoded, or parsers disagree about where it ends and
    drivers print its tail as a host name), balanced IPv6 brackets and numeric
    ports. Template placeholders (``{password}``, ``{port1}``...) count as
    valid tokens. The error never holds a clear-text password.
    """
    if not url:
        raise exception.InvalidURL(kind=kind, url="''", reason="empty URL")
    reason = _structure_error(_PLACEHOLDER_RE.sub(_TOKEN, url))
    if reason is not None:
        raise exception.InvalidURL(kind=kind, url=_mask_invalid(url), reason=reason)
