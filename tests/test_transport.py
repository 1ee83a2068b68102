"""The shared helpers of ``tenuo_keys._transport`` and ``tenuo_keys._url.redact_url``."""

from __future__ import annotations

import pytest

from tenuo_keys._transport import check_transport, is_loopback
from tenuo_keys._url import redact_url


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost",
                                  "LOCALHOST", "localhost."])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.5", "vault.internal", "localhost.evil.com",
                                  "128.0.0.1", "::2", "0.0.0.0", ""])
def test_hosts_that_are_not_loopback(host):
    assert not is_loopback(host)


def test_check_transport_allows_verified_tls_anywhere():
    check_transport(host="vault.example.com", plaintext=False, unverified=False, allowed=False,
                    what="x")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("vault://u:p@h:1/x?a=1&b=2#frag", "vault://***@h:1/x?a=***&b=***#***"),
        ("awssm://us-east-1/k", "awssm://us-east-1/k"),
        ("nourl", "<5 characters>"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected
