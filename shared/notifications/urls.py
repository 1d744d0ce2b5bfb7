"""Which webhook URLs may be called, and the address to connect to (SSRF care).

AWS mode: `https` only, and every address the host resolves to must be public (no private,
loopback, link-local/metadata, multicast or reserved ranges). The checked address is the one we
connect to, so a DNS answer cannot change between the check and the request (rebinding).
Local mode (`allow_insecure_loopback_webhooks`): the same rules, plus loopback targets (`http` or
`https`) for a receiver on the developer's machine. Nothing else non-public: a local stack must not
become a way to reach the metadata service (169.254.169.254) or the developer's private network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]
LOOPBACK_NAMES = ("localhost",)


class UrlRejected(ValueError):
    """The URL may not be called; the message says why (shown to API users and in attempts)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (SNI / Host header)
    port: int
    path: str  # path + query
    address: str  # the vetted IP to connect to


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _may_be_public(host: str) -> bool:
    """False for literal non-public IPs and `localhost`; names are checked again once resolved."""
    if host.lower() in LOOPBACK_NAMES:
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return True


def _address_allowed(address: str, allow_insecure_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global or (allow_insecure_loopback and ip.is_loopback)


def check_syntax(url: str, allow_insecure_loopback: bool) -> tuple[str, str, int, str]:
    """Static checks (no DNS): used by the API on create/update and by the sender."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRejected("must be an http(s) URL")
    if not parts.hostname:
        raise UrlRejected("must have a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRejected("must not contain credentials; use custom_headers")
    if parts.fragment:
        raise UrlRejected("must not contain a fragment")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UrlRejected("has an invalid port") from None
    host = parts.hostname
    if scheme == "http" and not (allow_insecure_loopback and _is_loopback_host(host)):
        raise UrlRejected("must use https" + ("" if allow_insecure_loopback else " (http is local-only)"))
    loopback_ok = allow_insecure_loopback and _is_loopback_host(host)
    if not loopback_ok and not _may_be_public(host):
        raise UrlRejected(
            "must not target a private, link-local or reserved address"
            + (" (loopback is allowed locally)" if allow_insecure_loopback else " or loopback")
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port, path


def resolve_target(url: str, allow_insecure_loopback: bool, resolver: Resolver = system_resolver) -> Target:
    scheme, host, port, path = check_syntax(url, allow_insecure_loopback)
    try:
        addresses = resolver(host, port)
    except OSError as exc:
        raise UrlRejected(f"host [{host}] does not resolve ({exc})") from None
    if not addresses:
        raise UrlRejected(f"host [{host}] does not resolve")
    bad = [a for a in addresses if not _address_allowed(a, allow_insecure_loopback)]
    if bad:
        raise UrlRejected(f"host [{host}] resolves to a non-public address [{bad[0]}]")
    return Target(scheme, host, port, path, addresses[0])
