"""The Prefect client kehoach's service takes every round: one TLS context per process, built as
Prefect would build it (verified against certifi's bundle unless Prefect's settings say otherwise)."""

from __future__ import annotations

import ssl

import pytest
from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, PREFECT_API_URL, temporary_settings

from service import cycles


@pytest.fixture(autouse=True)
def fresh_context():
    cycles._tls_context.cache_clear()
    yield
    cycles._tls_context.cache_clear()


def test_every_client_shares_one_verified_context():
    with temporary_settings(updates={PREFECT_API_URL: "https://prefect.example/api"}):
        first, second = cycles.prefect_client(), cycles.prefect_client()
    context = first._client._transport._pool._ssl_context
    assert context is second._client._transport._pool._ssl_context
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded


def test_prefects_insecure_setting_is_honoured():
    with temporary_settings(
        updates={PREFECT_API_URL: "https://prefect.example/api", PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}
    ):
        client = cycles.prefect_client()
    context = client._client._transport._pool._ssl_context
    assert context.verify_mode is ssl.CERT_NONE and not context.check_hostname
