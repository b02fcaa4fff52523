"""URL safety for media and callback URLs: http(s) only, and no requests into private
networks (SSRF) unless a host is allowlisted.

In ``production`` and ``staging`` a URL whose host resolves to a private, loopback,
link-local or otherwise non-public address is refused, and so is one whose host does not
resolve. In ``development`` loopback is allowed (a receiver on your own machine) and a
host that does not resolve is let through (you may be offline); private and link-local
addresses are refused there too.

Host names are resolved off the event loop, within ``CALLGATE_DNS_TIMEOUT`` seconds (a
lookup that takes longer counts as not resolving), and remembered for
``CALLGATE_DNS_CACHE_TTL`` seconds: :class:`UrlChecker` is what the API, batches and the
webhook sender use; :func:`check_url` is the decision itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from callgate.domain import validate_url
from callgate.exceptions import ValidationError

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads lookups run on (a stuck resolver holds one of them, never the loop)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="callgate-dns")
        return _POOL


def _lookup(host: str) -> list[str]:
    return resolve(host)  # looked up when called: tests replace ``resolve``


class DnsCache:
    """Host name → addresses, each lookup on a thread within ``timeout`` seconds (longer:
    :class:`TimeoutError`, an :class:`OSError` like a name that does not resolve), the
    answer (or the failure) remembered for ``ttl`` seconds, at most ``size`` hosts."""

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        ttl: float = 60.0,
        size: int = 4096,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout, self.ttl, self.size, self._now = timeout, ttl, size, now
        self._known: dict[str, tuple[float, list[str] | OSError]] = {}

    def _cached(self, host: str) -> list[str] | OSError | None:
        hit = self._known.get(host)
        if hit is None or hit[0] <= self._now():
            return None
        return hit[1]

    def _remember(self, host: str, found: list[str] | OSError) -> list[str]:
        self._known.pop(host, None)
        while len(self._known) >= self.size:
            self._known.pop(next(iter(self._known)))
        self._known[host] = (self._now() + self.ttl, found)
        return _answer(found)

    def lookup(self, host: str) -> list[str]:
        """The addresses of ``host`` (blocking the calling thread, never past the timeout)."""
        found = self._cached(host)
        if found is None:
            try:
                found = _pool().submit(_lookup, host).result(self.timeout)
            except OSError as exc:  # TimeoutError too
                found = exc
            return self._remember(host, found)
        return _answer(found)

    async def alookup(self, host: str) -> list[str]:
        """:meth:`lookup` for a coroutine: the event loop goes on meanwhile."""
        found = self._cached(host)
        if found is None:
            future = asyncio.wrap_future(_pool().submit(_lookup, host))
            try:
                found = await asyncio.wait_for(future, self.timeout)
            except OSError as exc:
                found = exc
            return self._remember(host, found)
        return _answer(found)


def _answer(found: list[str] | OSError) -> list[str]:
    if isinstance(found, OSError):
        raise found
    return found


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
        if not _public(address, loopback_ok=environment == "development"):
            raise ValidationError(
                f"{url!r} points into a private network ({address}); allowlist its host "
                "in CALLGATE_URL_ALLOWLIST if that is intended",
                field=field,
                code="unsafe_url",
            )
    return url


class UrlChecker:
    """:func:`check_url` with the settings' environment and allowlist, and a
    :class:`DnsCache` shared by every check of one gateway."""

    def __init__(
        self, environment: str, allowlist: Iterable[str] = (), dns: DnsCache | None = None
    ) -> None:
        self.environment, self.allowlist = environment, tuple(allowlist)
        self.dns = dns or DnsCache()

    def check(self, raw: object, field: str) -> str:
        """For threads and the CLI: may block this thread up to the DNS timeout."""
        return check_url(
            raw,
            field=field,
            environment=self.environment,
            allowlist=self.allowlist,
            resolver=self.dns.lookup,
        )

    async def acheck(self, raw: object, field: str) -> str:
        """For coroutines: the host is resolved off the loop first, then checked from
        the cache."""
        url = validate_url(raw, field=field)
        host = (urlsplit(url).hostname or "").lower()
        if host and not _is_address(host):
            # a failure is remembered; the check below says what it means
            with contextlib.suppress(OSError, UnicodeError, ValueError):
                await self.dns.alookup(host)
        return self.check(url, field)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64, SIIT, the
#: deprecated IPv4-compatible form)
_EMBEDDING = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
#: NAT64 for local use (RFC 8215): whatever it embeds is someone's private network
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded(address: Address) -> list[Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, 6to4, Teredo, NAT64 ...)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[Address] = [a for a in (address.ipv4_mapped, address.sixtofour) if a]
    found += list(address.teredo or ())
    if any(address in net for net in _EMBEDDING) and int(address) > 1:  # not :: or ::1
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _public(address: Address, *, loopback_ok: bool) -> bool:
    """Safe to call: globally reachable and not multicast, and so is every IPv4 address it
    embeds (loopback allowed with ``loopback_ok``)."""
    if isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_NAT64:
        return False
    for one in [address, *_embedded(address)]:
        if one.is_loopback and loopback_ok:
            continue
        if one.is_multicast or not one.is_global:
            return False
    return True


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
