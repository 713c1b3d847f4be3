"""Every probe kind goes through the outbound guard: metadata, mapped metadata, a name that
resolves to loopback (where loopback is not allowed), and a redirect to metadata."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.tests.outbound_targets import (
    LOOPBACK_NAME,
    METADATA,
    METADATA_MAPPED,
    METADATA_URL,
    redirector,
    refuse_loopback,
)
from health.choices import CheckKind, CheckStatus
from health.specs import ProbeSpec
from health.tests.test_probes import probe

KINDS = [CheckKind.HTTP, CheckKind.TCP, CheckKind.TLS, CheckKind.GRPC]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("host", [METADATA, METADATA_MAPPED])
def test_no_probe_reaches_the_metadata_address(kind: str, host: str) -> None:
    result = probe(ProbeSpec(kind=kind, timeout_seconds=0.5), 80, host=host)
    assert result.status == CheckStatus.FAIL
    assert "is a cloud metadata address" in result.reason
    assert result.reason.startswith("refused: ")


@pytest.mark.parametrize("kind", KINDS)
def test_no_probe_reaches_loopback_by_name_where_loopback_is_not_allowed(
    settings: Any, kind: str
) -> None:
    # given production's default: private networks allowed, loopback not
    refuse_loopback(settings)
    # when an instance registered as "localhost" is probed
    result = probe(ProbeSpec(kind=kind, timeout_seconds=0.5), 8080, host=LOOPBACK_NAME)
    # then the name's address is refused before any connection
    assert result.status == CheckStatus.FAIL
    assert "is loopback" in result.reason


def test_an_http_probe_does_not_follow_a_redirect_to_the_metadata_address() -> None:
    # given an instance that redirects its health endpoint to the metadata service
    with redirector() as instance:
        # when probed
        result = probe(ProbeSpec(), instance.port)
    # then the redirect is judged as the answer (Kubernetes counts 2xx-3xx as success), and
    # its target is named, never fetched
    assert f"(redirect to {METADATA_URL} not followed)" in result.reason
    assert result.output == {"http_status": 302}
    assert instance.paths == ["/health"]


def test_a_stored_path_that_names_another_host_never_leaves_the_instance() -> None:
    # given a spec saved before paths were validated, whose path is a network-path reference
    spec = ProbeSpec(path=f"//{METADATA}/latest/meta-data/")
    # when probed
    result = probe(spec, 80, host="127.0.0.1")
    # then nothing is requested from the other host
    assert result.status == CheckStatus.FAIL
    assert result.reason == f"refused: path '//{METADATA}/latest/meta-data/' leaves the instance"
