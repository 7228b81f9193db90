"""Nothing under /api/v1 is readable without a token, and viewers cannot act. The routes
are enumerated from the app, so a new endpoint cannot be forgotten here."""

from __future__ import annotations

import re
import uuid

import fastapi.routing
import pytest

from service.api import PREFIX

READ_METHODS = {"GET", "HEAD"}


def routes(app) -> list:
    """Every route of the app, also those of included routers (which FastAPI >= 0.150 keeps nested)."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(iterate(app.routes)) if iterate else list(app.routes)


def api_calls(app) -> list[tuple[str, str]]:
    calls = []
    for route in routes(app):
        if route.path and route.path.startswith(PREFIX) and route.methods:
            path = re.sub(r"\{[^}]+\}", lambda m: "2093" if m.group() == "{year}" else str(uuid.uuid4()), route.path)
            calls += [(method, path) for method in sorted(route.methods)]
    return calls


async def test_the_api_has_the_endpoints_of_the_issue(app):
    calls = {(m, re.sub(r"[0-9a-f-]{36}", "{id}", p)) for m, p in api_calls(app)}
    expected = {
        ("GET", "/api/v1/cycles"),
        ("GET", "/api/v1/cycles/{id}"),
        ("GET", "/api/v1/cycles/{id}/stages"),
        ("POST", "/api/v1/cycles/{id}/cancel"),
        ("GET", "/api/v1/requests"),
        ("GET", "/api/v1/requests/{id}"),
        ("POST", "/api/v1/requests/remind"),
        ("POST", "/api/v1/requests/{id}/remind"),
        ("POST", "/api/v1/requests/{id}/escalate"),
        ("POST", "/api/v1/assignments/{id}/reassign"),
        ("GET", "/api/v1/waiting-on"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/delegations"),
        ("POST", "/api/v1/delegations"),
        ("POST", "/api/v1/delegations/{id}/revoke"),
        ("GET", "/api/v1/events"),
        ("POST", "/api/v1/events"),
    }
    assert expected <= calls


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer kh_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "kh_token-without-scheme"},
    ],
    ids=["none", "unknown", "empty", "basic", "no-scheme"],
)
async def test_every_endpoint_refuses_an_anonymous_caller(app, client, headers):
    for method, path in api_calls(app):
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, response.status_code, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"]


async def test_a_disabled_account_is_refused_everywhere(app, client, accounts):
    for method, path in api_calls(app):
        response = await client.request(method, path, headers=accounts.auth(accounts.disabled), json={})
        assert response.status_code == 401, (method, path)


async def test_a_viewer_reads_but_every_action_is_refused(app, client, accounts):
    actions = 0
    for method, path in api_calls(app):
        response = await client.request(method, path, headers=accounts.as_viewer, json={})
        if method in READ_METHODS:
            assert response.status_code in (200, 404), (method, path, response.status_code, response.text)
        else:
            actions += 1
            assert response.status_code == 403, (method, path, response.status_code, response.text)
    assert actions >= 7


async def test_me_names_the_caller_and_answers_are_not_cached(client, accounts):
    response = await client.get("/api/v1/me", headers=accounts.as_viewer)
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
    assert response.headers["cache-control"] == "no-store"


async def test_the_openapi_schema_documents_models_and_the_token(app, client):
    spec = (await client.get("/openapi.json")).json()
    assert set(spec["components"]["securitySchemes"]) == {"ApiToken"}
    schemas = spec["components"]["schemas"]
    for name in (
        "CycleRead",
        "RequestRead",
        "RequestHistoryRead",
        "WaitingOnRead",
        "DelegationCreate",
        "DelegationRead",
        "EconomicEventCreate",
        "EconomicEventRead",
        "ActionRead",
    ):
        assert name in schemas
    assert all(p.startswith(PREFIX) for p in spec["paths"]), "only the API is in the schema"
    assert schemas["EconomicEventCreate"]["properties"]["name"]["maxLength"] == 300
