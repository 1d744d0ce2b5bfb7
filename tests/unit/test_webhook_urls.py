"""Webhook URL rules: https only in AWS mode, loopback http only locally, no private targets (SSRF)."""

from __future__ import annotations

import pytest

from shared.notifications.urls import UrlRejected, check_syntax, resolve_target


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # plain http
        "http://127.0.0.1:8080/x",  # even to loopback
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.1.2.3/x",
        "https://192.168.0.10/x",
        "https://169.254.169.254/latest/meta-data",  # instance metadata
        "https://[::1]/x",
        "https://[fd00::1]/x",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https:///nohost",
    ],
)
def test_rejected_in_aws_mode(url: str) -> None:
    with pytest.raises(UrlRejected):
        resolve_target(url, allow_insecure_loopback=False, resolver=resolver("93.184.216.34"))


def test_public_https_is_allowed_and_pins_the_resolved_address() -> None:
    target = resolve_target("https://hooks.example.com:8443/in?x=1", False, resolver("93.184.216.34"))
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "hooks.example.com",
        8443,
        "/in?x=1",
        "93.184.216.34",
    )


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1", "100.64.0.1"])
def test_names_resolving_to_private_addresses_are_rejected_in_aws_mode(address: str) -> None:
    with pytest.raises(UrlRejected, match="non-public"):
        resolve_target("https://internal.example.com/", False, resolver("93.184.216.34", address))


def test_local_mode_allows_http_to_loopback_only() -> None:
    assert check_syntax("http://127.0.0.1:9000/h", True)[1:3] == ("127.0.0.1", 9000)
    assert check_syntax("http://localhost/h", True)[1] == "localhost"
    with pytest.raises(UrlRejected, match="https"):
        check_syntax("http://hooks.example.com/h", True)
    assert resolve_target("https://[::1]:8443/h", True, resolver("::1")).address == "::1"
    assert resolve_target("https://hooks.example.com/h", True, resolver("93.184.216.34")).port == 443


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data",  # instance metadata
        "https://10.0.0.1/h",
        "https://192.168.1.20/h",
        "https://172.16.0.1/h",
        "https://100.64.0.1/h",  # carrier-grade NAT
        "https://[fd00::1]/h",
        "https://[fe80::1]/h",
        "https://0.0.0.0/h",
        "http://10.0.0.1/h",
    ],
)
def test_local_mode_rejects_every_non_public_target_but_loopback(url: str) -> None:
    with pytest.raises(UrlRejected):
        check_syntax(url, True)
    with pytest.raises(UrlRejected):  # the sender checks again before it connects
        resolve_target(url, True, resolver("93.184.216.34"))


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "192.168.0.3", "fd00::1"])
def test_local_mode_rejects_names_resolving_to_private_addresses(address: str) -> None:
    with pytest.raises(UrlRejected, match="non-public"):
        resolve_target("https://internal.example.com/", True, resolver(address))
    # a name resolving to loopback is a local receiver: allowed
    assert resolve_target("https://dev.example.com/", True, resolver("127.0.0.1")).address == "127.0.0.1"


def test_unresolvable_host_is_rejected() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(UrlRejected, match="does not resolve"):
        resolve_target("https://nope.invalid/", False, fail)
