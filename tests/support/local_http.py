"""The tests' one-off HTTP requests to the processes they start (the stack's web, Mailpit-like
inboxes, the demo), with one TLS context for the whole process.

`httpx.get()` and its siblings build a new `Client` per call, and every `Client` loads certifi's CA
bundle into a new `ssl.SSLContext`: profiled in the end-to-end chain, that was 60 % of the pytest
process's CPU (about 40 s a test), though every address here is plain HTTP on 127.0.0.1. The
context is built once; each call still opens its own connection, as before, so a web process
killed and started again (the fault tests) never meets a stale pooled connection.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

_TLS = ssl.create_default_context()


# httpx's default 5 s is a bound for the internet. Here a page that builds the consolidated
# report (89 units, DOCX and PDF) on a loaded 2-core machine, under coverage, took longer: a
# bound on a hung server, not a measure of speed (tests never assert on time).
TIMEOUT = httpx.Timeout(60.0)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("timeout", TIMEOUT)
    return httpx.request(method, url, verify=_TLS, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def head(url: str, **kwargs: Any) -> httpx.Response:
    return request("HEAD", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)
