"""URL safety (``callgate.urls.check_url``): http(s) only, and no requests into private
networks outside an allowlist. Names are resolved by an injected resolver, so nothing
here touches the network (the real resolver is used only for numeric hosts, which
``getaddrinfo`` parses without asking DNS, and for names IDNA cannot encode, which fail
before any query is made)."""

from __future__ import annotations

import socket

import pytest

from callgate import urls
from callgate.exceptions import ValidationError
from callgate.urls import check_url, resolve

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

DNS: dict[str, list[str]] = {
    "example.org": [PUBLIC_V4],
    "dual.example.org": [PUBLIC_V4, PUBLIC_V6],
    "internal.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "localhost": ["127.0.0.1", "::1"],
    "rebind.example": [PUBLIC_V4, "192.168.1.7"],
}


def fake_resolve(host: str) -> list[str]:
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def check(url: object, environment: str = "production", **kw: object) -> str:
    kw.setdefault("resolver", fake_resolve)
    return check_url(url, field="callback_url", environment=environment, **kw)  # type: ignore[arg-type]


def refused(url: object, code: str, environment: str = "production", **kw: object) -> str:
    with pytest.raises(ValidationError) as info:
        check(url, environment, **kw)
    assert info.value.code == code
    assert info.value.field == "callback_url"
    assert info.value.message
    return info.value.message


# -- shape -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/ballot.pdf",
        "http://example.org",
        "https://example.org:8443/a?b=c#d",
        "HTTPS://EXAMPLE.ORG/upper",
        "https://user:pw@example.org/x",
        f"http://{PUBLIC_V4}/x",
        f"http://[{PUBLIC_V6}]/x",
        "https://dual.example.org/x",
    ],
)
@pytest.mark.parametrize("environment", ["development", "staging", "production"])
def test_public_http_urls_pass_everywhere(url: str, environment: str) -> None:
    assert check(url, environment) == url


def test_surrounding_whitespace_is_stripped() -> None:
    assert check("  https://example.org/x \n") == "https://example.org/x"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/file.pdf",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "mailto:someone@example.org",
        "gopher://example.org/",
        "example.org/no-scheme",
        "//example.org/scheme-relative",
        "http://",
        "http:///path-only",
        "not a url",
    ],
)
def test_anything_but_absolute_http_is_invalid_url(url: str) -> None:
    refused(url, "invalid_url")


@pytest.mark.parametrize("raw", [None, "", "   ", 42, ["https://example.org"]])
def test_a_missing_or_non_string_url_is_missing_field(raw: object) -> None:
    refused(raw, "missing_field")


# -- SSRF in production (and staging) -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://127.1.2.3:8080/x",
        "http://[::1]/x",
        "http://10.0.0.1/x",
        "http://172.16.5.4/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/x",  # carrier-grade NAT
        "http://0.0.0.0/x",
        "http://[fc00::1]/x",
        "http://[fe80::1]/x",
        "http://[::ffff:10.0.0.1]/x",  # IPv4-mapped private address
    ],
)
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_private_literal_addresses_are_refused(url: str, environment: str) -> None:
    message = refused(url, "unsafe_url", environment)
    assert "private network" in message
    assert "CALLGATE_URL_ALLOWLIST" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://internal.example/x",
        "http://metadata.example/latest/meta-data/",
        "http://localhost:8080/hook",
        "http://LOCALHOST/hook",
    ],
)
def test_names_that_resolve_to_private_addresses_are_refused(url: str) -> None:
    refused(url, "unsafe_url")


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    refused("https://rebind.example/x", "unsafe_url")


def test_a_name_that_does_not_resolve_is_refused_in_production() -> None:
    assert "does not resolve" in refused("https://nowhere.invalid/x", "unsafe_url")


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001"])
def test_numeric_spellings_of_loopback_are_refused_with_the_real_resolver(host: str) -> None:
    # getaddrinfo parses these itself (inet_aton), so this needs no network
    assert resolve(host) == ["127.0.0.1"]
    refused(f"http://{host}/x", "unsafe_url", resolver=resolve)


def test_the_resolver_is_asked_for_the_lowercased_host_only() -> None:
    asked: list[str] = []

    def spy(host: str) -> list[str]:
        asked.append(host)
        return [PUBLIC_V4]

    check("https://User:Pw@Example.ORG:8443/a/b?c=d", resolver=spy)
    assert asked == ["example.org"]


def test_literal_addresses_are_not_resolved() -> None:
    def boom(host: str) -> list[str]:
        raise AssertionError(f"resolver called for {host}")

    check(f"http://{PUBLIC_V4}/x", resolver=boom)
    refused("http://10.0.0.1/x", "unsafe_url", resolver=boom)


# -- the allowlist ----------------------------------------------------------------------


def test_an_allowlisted_host_passes_without_being_resolved() -> None:
    def boom(host: str) -> list[str]:
        raise AssertionError(f"resolver called for {host}")

    url = "http://internal.example/hook"
    assert check(url, allowlist=["internal.example"], resolver=boom) == url


def test_the_allowlist_matches_hosts_case_insensitively() -> None:
    url = "http://Internal.Example/hook"
    assert check(url, allowlist=["INTERNAL.example"]) == url


def test_an_allowlisted_literal_address_passes() -> None:
    url = "http://10.0.0.5:9000/hook"
    assert check(url, allowlist=["10.0.0.5"]) == url


def test_the_allowlist_covers_only_the_hosts_it_names() -> None:
    refused("http://10.0.0.6/hook", "unsafe_url", allowlist=["10.0.0.5", "internal.example"])
    # not a suffix match either
    refused("http://evil.internal.example/hook", "unsafe_url", allowlist=["internal.example"])


def test_the_allowlist_does_not_excuse_a_bad_scheme() -> None:
    refused("ftp://internal.example/x", "invalid_url", allowlist=["internal.example"])


# -- development ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://[::1]/hook", "http://localhost:9000/hook"]
)
def test_loopback_is_allowed_in_development(url: str) -> None:
    assert check(url, "development") == url


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.example/x",
        "http://rebind.example/x",
    ],
)
def test_private_and_link_local_are_refused_even_in_development(url: str) -> None:
    refused(url, "unsafe_url", "development")


def test_a_name_that_does_not_resolve_passes_in_development() -> None:
    url = "https://offline.invalid/x"
    assert check(url, "development") == url


# -- URLs that cannot be parsed or resolved at all ----------------------------------------


@pytest.mark.parametrize("url", ["http://[zz/x", "http://[::1/x", "http://]/x"])
def test_a_malformed_ipv6_host_is_invalid_url(url: str) -> None:
    refused(url, "invalid_url")


@pytest.mark.parametrize("url", ["http://example.org:99999/x", "http://example.org:abc/x"])
def test_an_impossible_port_is_invalid_url(url: str) -> None:
    refused(url, "invalid_url")


# the real resolver: IDNA-encoding the name fails before any DNS query is made
IMPOSSIBLE_HOSTS = ["a..b", "x" * 64 + ".example.org"]


@pytest.mark.parametrize("host", IMPOSSIBLE_HOSTS)
def test_a_host_with_an_impossible_label_is_refused_in_production(host: str) -> None:
    assert "not a valid host name" in refused(f"http://{host}/x", "invalid_url", resolver=resolve)


@pytest.mark.parametrize("host", IMPOSSIBLE_HOSTS)
def test_a_host_with_an_impossible_label_is_refused_in_development(host: str) -> None:
    refused(f"http://{host}/x", "invalid_url", "development", resolver=resolve)


def test_the_default_resolver_is_looked_up_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def spy(host: str) -> list[str]:
        asked.append(host)
        return ["10.0.0.9"]

    monkeypatch.setattr(urls, "resolve", spy)
    with pytest.raises(ValidationError) as info:
        check_url("https://example.org/x", field="callback_url", environment="production")
    assert info.value.code == "unsafe_url"
    assert asked == ["example.org"]
