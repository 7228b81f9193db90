"""Problems a unit raises with the PPC: recorded by a coordinator (checked, audited), listed
for viewers; the service starts each one's escalation cycle (tests/test_e2e_cadences.py)."""

from __future__ import annotations

from sqlalchemy import select

from approvals.models import AuditEvent


async def test_a_coordinator_records_a_problem_and_a_viewer_lists_it(client, accounts, database):
    body = {
        "title": "Thiếu kinh phí in tài liệu",
        "description": "Sở Tài chính chưa phân bổ kinh phí quý IV.",
        "unit": "dost",
    }
    assert (await client.post("/api/v1/problems", json=body, headers=accounts.as_viewer)).status_code == 403
    created = await client.post("/api/v1/problems", json=body, headers=accounts.as_coordinator)
    assert created.status_code == 201, created.text
    problem = created.json()
    assert problem["unit"] == "dost" and problem["cycle_id"] is None and problem["recorded_by"].startswith("api:")

    listed = await client.get("/api/v1/problems", headers=accounts.as_viewer)
    assert problem["id"] in [p["id"] for p in listed.json()]
    async with database.sessions() as session:
        audit = (
            (await session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == problem["id"])))
            .scalars()
            .all()
        )
    assert audit == ["problem.recorded"]


async def test_a_problem_from_an_unknown_unit_or_without_a_description_changes_nothing(client, accounts):
    before = len((await client.get("/api/v1/problems", params={"limit": 500}, headers=accounts.as_viewer)).json())
    unknown = await client.post(
        "/api/v1/problems",
        headers=accounts.as_coordinator,
        json={"title": "Vướng mắc", "description": "Mô tả", "unit": "so_khong_co"},
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["body", "unit"]
    assert "unknown unit 'so_khong_co'" in unknown.json()["errors"][0]["msg"]
    empty = await client.post(
        "/api/v1/problems",
        headers=accounts.as_coordinator,
        json={"title": "Vướng mắc", "description": "", "unit": "dost"},
    )
    assert empty.status_code == 422 and empty.json()["errors"][0]["loc"] == ["body", "description"]
    after = len((await client.get("/api/v1/problems", params={"limit": 500}, headers=accounts.as_viewer)).json())
    assert after == before
