"""A stage removed from the plan while one of its links is live: the link is dead, and answers
with the invalid-link page (not a 500), on the approval page and on its POST, and changes nothing."""

from __future__ import annotations

from sqlalchemy import select, update

from approvals.models import ApprovalRequest, Decision
from tests.api.conftest import live_token, open_request


async def test_a_link_to_a_stage_the_plan_no_longer_has_gets_the_invalid_link_page(client, database, settings):
    opened = await open_request(database, settings)
    token = await live_token(database, settings, next(iter(opened.assignments.values())))
    assert (await client.get(f"/a/{token}")).status_code == 200  # live while its stage is in the plan
    invalid = (await client.get(f"/a/{'x' * 43}")).text
    async with database.transaction() as session:
        await session.execute(update(ApprovalRequest).where(ApprovalRequest.id == opened.request_id)
                              .values(stage="a_stage_since_removed"))

    page = await client.get(f"/a/{token}")
    answer = await client.post(f"/a/{token}", data={"outcome": "approve", "comment": ""})

    assert (page.status_code, page.text) == (404, invalid)
    assert (answer.status_code, answer.text) == (404, invalid)
    async with database.sessions() as session:
        status = (await session.execute(select(ApprovalRequest.status)
                                        .where(ApprovalRequest.id == opened.request_id))).scalar_one()
        decisions = (await session.execute(select(Decision.id)
                                           .where(Decision.request_id == opened.request_id))).all()
    assert (status, decisions) == ("pending", [])
