"""URL safety for media and callback URLs: http(s) only, and no requests into private
networks (SSRF) unless a host is allowlisted.

In ``production`` and ``staging`` a URL whose host resolves to a private, loopback,
link-local or otherwise non-public address is refused, and so is one whose host does not
resolve. In ``development`` loopback is allowed (a receiver on your own machine) and a
host that does not resolve is let through (you may be offline); private and link-local
addresses are refused there too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from callgate.domain import validate_url
from callgate.exceptions import ValidationError

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def check_url(
    raw: object,
    *,
    field: str,
    environment: str,
    allowlist: Iterable[str] = (),
    resolver: Resolver | None = None,
) -> str:
    """Return the URL if it is safe to fetch or call; raise ``unsafe_url`` otherwise."""
    url = validate_url(raw, field=field)
    host = (urlsplit(url).hostname or "").lower()
    if host in {h.lower() for h in allowlist}:
        return url
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a) for a in (resolver or resolve)(host)]
        except (UnicodeError, ValueError):  # not even a host name: nothing could call it
            raise ValidationError(
                f"{host!r} in {url!r} is not a valid host name", field=field, code="invalid_url"
            ) from None
        except OSError:  # does not resolve
            if environment == "development":
                return url
            raise ValidationError(
                f"the host of {url!r} does not resolve", field=field, code="unsafe_url"
            ) from None
    for address in addresses:
        if address.is_loopback and environment == "development":
            continue
        if not address.is_global:
            raise ValidationError(
                f"{url!r} points into a private network ({address}); allowlist its host "
                "in CALLGATE_URL_ALLOWLIST if that is intended",
                field=field,
                code="unsafe_url",
            )
    return url
