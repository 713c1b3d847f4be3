"""The outbound guard's policy: what is always refused, what an admin may allow, redirects."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from controlplane import outbound
from controlplane.env import env_networks
from controlplane.tests.outbound_targets import (
    LOOPBACK_NAME,
    METADATA,
    METADATA_MAPPED,
    METADATA_URL,
    redirector,
    refuse_loopback,
)

EVERYTHING = ["0.0.0.0/0", "::/0"]


@pytest.mark.parametrize(
    ("address", "what"),
    [
        (METADATA, "cloud metadata"),
        (METADATA_MAPPED, "cloud metadata"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 spelling of 169.254.169.254
        ("::a9fe:a9fe", "cloud metadata"),  # IPv4-compatible spelling
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.10.20", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (refused, never bound)
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_it_always_refuses_metadata_and_link_local(settings: Any, address: str, what: str) -> None:
    # given an admin who allowed every network there is
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = EVERYTHING
    # then these are refused all the same, saying what they are
    with pytest.raises(outbound.Refused, match=what):
        outbound.check_address(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.7.7", "fd12::1"])
def test_loopback_and_private_need_an_admin_to_allow_them(settings: Any, address: str) -> None:
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(outbound.Refused, match="SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS"):
        outbound.check_address(address)
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = EVERYTHING
    outbound.check_address(address)


def test_public_addresses_are_allowed(settings: Any) -> None:
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = []
    for address in ("93.184.215.14", "2606:4700::6810:85e5"):
        outbound.check_address(address)


def test_a_name_is_judged_by_what_it_resolves_to(settings: Any) -> None:
    # given loopback not allowed (production's default)
    refuse_loopback(settings)
    # then a name resolving to loopback is refused, naming the address it resolved to
    with pytest.raises(outbound.Refused, match="is loopback"):
        outbound.resolve(LOOPBACK_NAME, 80)
    assert "is loopback" in outbound.refusal(f"http://{LOOPBACK_NAME}:8080/hook")


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.goog.", "metadata"])
def test_metadata_names_are_refused_without_asking_dns(host: str) -> None:
    with pytest.raises(outbound.Refused, match="metadata hostname"):
        outbound.check_host(host)


@pytest.mark.parametrize(
    "url",
    [
        f"http://{METADATA}/",
        f"http://[{METADATA_MAPPED}]/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///nohost",
    ],
)
def test_refusal_explains_urls_that_may_not_be_saved(url: str) -> None:
    assert outbound.refusal(url) != ""


def test_a_redirect_to_the_metadata_address_is_checked_again_and_refused() -> None:
    # given a loopback server (allowed outside production) that redirects to metadata
    with redirector() as server:
        # when the caller follows redirects
        with pytest.raises(outbound.Refused, match="cloud metadata"):
            outbound.request("GET", server.url("/api/v1/query"), timeout=2, max_redirects=3)
        # and when it does not, the redirect itself is the answer
        reply = outbound.request("POST", server.url("/hook"), json={}, timeout=2)
    assert reply.status_code == 302
    assert reply.headers["Location"] == METADATA_URL
    assert server.paths == ["/api/v1/query", "/hook"]


def test_a_redirect_to_an_allowed_host_is_followed_as_a_new_request() -> None:
    # given a loopback server redirecting (302: the follow-up is a GET) to another
    with redirector(location="") as target, redirector(location=target.url("/moved")) as server:
        # when a POST follows at most one redirect
        reply = outbound.request(
            "POST", server.url("/first"), json={"a": 1}, timeout=2, max_redirects=1
        )
    # then the second server answered, and the reply says where it went
    assert reply.status_code == 200
    assert target.paths == ["/moved"]
    assert reply.redirects == [server.url("/first")]
    assert reply.url == target.url("/moved")


def test_the_answer_kept_is_bounded_and_printable() -> None:
    text = "line one\n\x1b[31mred\x00" + "x" * 1000
    kept = outbound.excerpt(text)
    assert len(kept) == outbound.EXCERPT_CHARS
    assert "\n" not in kept and "\x1b" not in kept and "\x00" not in kept
    assert kept.startswith("line one [31mred")


def test_a_bad_network_setting_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network")
    with pytest.raises(ImproperlyConfigured, match="'not-a-network' is not an IP network"):
        env_networks("SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS", [])


FORBIDDEN_V4 = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4")]


@given(
    network=st.sampled_from(FORBIDDEN_V4),
    offset=st.integers(min_value=0, max_value=2**16 - 1),
    spelling=st.sampled_from(["plain", "mapped", "nat64", "compatible"]),
)
def test_no_spelling_of_a_forbidden_ipv4_address_gets_through(
    network: ipaddress.IPv4Network, offset: int, spelling: str
) -> None:
    v4 = network[offset % network.num_addresses]
    spelled = {
        "plain": str(v4),
        "mapped": f"::ffff:{v4}",
        "nat64": str(ipaddress.IPv6Address(int(ipaddress.ip_address("64:ff9b::")) + int(v4))),
        "compatible": str(ipaddress.IPv6Address(int(v4))),
    }[spelling]
    if spelling == "compatible" and int(v4) <= 1:
        return  # :: and ::1 are IPv6's own unspecified and loopback addresses
    with pytest.raises(outbound.Refused):
        outbound.check_host(spelled)
