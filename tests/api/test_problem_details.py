"""Every error of the API answers in one shape, RFC 9457 problem details: a missing token, a
viewer acting, an unknown id, a step already escalated, a refusal by a rule, a malformed body."""

from __future__ import annotations

import uuid

from tests.api.conftest import open_request

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, title: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["title"] == title
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def test_auth_and_roles_answer_problem_details(client, accounts):
    assert_problem(await client.get("/api/v1/requests"), 401, "Unauthorized")
    viewer = await client.post(f"/api/v1/requests/{uuid.uuid4()}/remind", headers=accounts.as_viewer)
    assert_problem(viewer, 403, "Forbidden")


async def test_an_unknown_id_and_a_conflict_answer_problem_details(client, accounts, database, settings):
    unknown = await client.post(f"/api/v1/requests/{uuid.uuid4()}/remind", headers=accounts.as_coordinator)
    assert_problem(unknown, 404, "Not found")
    opened = await open_request(database, settings)
    escalated = await client.post(f"/api/v1/requests/{opened.request_id}/escalate", headers=accounts.as_coordinator)
    assert escalated.status_code == 200, escalated.text
    again = await client.post(f"/api/v1/requests/{opened.request_id}/escalate", headers=accounts.as_coordinator)
    body = assert_problem(again, 409, "Conflict")
    assert body["detail"].endswith("nothing was changed.") and "errors" not in body


async def test_a_refusal_bad_input_and_a_malformed_body_share_the_422_shape(client, accounts):
    """Each error's `type` names its meaning: a rule refused (a district abolished in 2025 may not
    raise a problem), or what was sent names nothing the plan has (an unknown unit)."""
    refused = await client.post(
        "/api/v1/problems",
        headers=accounts.as_coordinator,
        json={"unit": "pc_trang_dinh", "title": "Vướng mắc", "description": "Chi tiết"},
    )
    body = assert_problem(refused, 422, "Refused")
    assert body["errors"] == [{"loc": ["body", "unit"], "msg": body["errors"][0]["msg"], "type": "refused"}]
    unknown = await client.post(
        "/api/v1/problems",
        headers=accounts.as_coordinator,
        json={"unit": "so_khong_co", "title": "Vướng mắc", "description": "Chi tiết"},
    )
    body = assert_problem(unknown, 422, "Invalid input")
    assert body["errors"] == [{"loc": ["body", "unit"], "msg": body["errors"][0]["msg"], "type": "invalid_input"}]
    malformed = await client.post("/api/v1/problems", headers=accounts.as_coordinator, json={"unit": 5})
    body = assert_problem(malformed, 422, "Unprocessable content")
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "title"), ("body", "description")}
