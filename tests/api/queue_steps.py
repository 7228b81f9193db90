"""The queue tests' steps (tests/api/test_queue.py, test_queue_digest.py): a step of each kind
opened or submitted in process, an official's queue session made from a live link, a bulk decision
through the list and its one confirmation, and what a page or the database shows of it."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from sqlalchemy import func, select

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Decision
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submissions import open_submission
from approvals.tokens import derive_token
from notifications.models import OutboxMessage
from tests.api.conftest import live_token, open_request

STARTS = dt.date(2026, 1, 15)
MAX_PAGE_BYTES = 30 * 1024


async def new_cycle(database, kind: str = "annual"):
    async with database.transaction() as session:
        return await steps.get_or_create_cycle(
            session, kind=kind, period=f"t-{uuid.uuid4().hex[:12]}", starts_on=STARTS
        )


async def open_asked(database, settings, cycle, stage_id: str, subject: str = "", *, days_late: int = 0) -> uuid.UUID:
    """A stage's branch opened in `cycle` with its approvers asked (as `route` asks them once it is submitted)."""
    opened = await open_request(
        database, settings, cycle=cycle, stage_id=stage_id, subject=subject, days_late=days_late
    )
    return opened.request_id


async def submitted(client, database, settings, cycle, stage_id: str, form: dict) -> uuid.UUID:
    """A stage that starts with a submission, submitted through its form: its approvers are asked."""
    async with database.transaction() as session:
        opened = await open_submission(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id=stage_id,
            subject="",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
    token = derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)
    assert (await client.post(f"/s/{token}", data=form)).status_code == 200
    return opened.opened.request.id


async def asked_of(database, request_id, official: str) -> uuid.UUID:
    async with database.sessions() as session:
        return (
            await session.execute(
                select(Assignment.id).where(
                    Assignment.request_id == request_id,
                    Assignment.official_id == official,
                    Assignment.status == "pending",
                )
            )
        ).scalar_one()


async def snapshot(database) -> dict:
    """What a decision changes: decisions, request statuses, assignments, audit rows, outbox rows."""
    async with database.sessions() as session:

        async def count(model) -> int:
            return (await session.execute(select(func.count()).select_from(model))).scalar_one()

        statuses = sorted((await session.execute(select(Assignment.id, Assignment.status))).all())
        return {
            "decisions": await count(Decision),
            "audit": await count(AuditEvent),
            "outbox": await count(OutboxMessage),
            "assignments": statuses,
            "requests": sorted((await session.execute(select(ApprovalRequest.id, ApprovalRequest.status))).all()),
        }


async def session_from(client, database, settings, assignment_id) -> None:
    token = await live_token(database, settings, assignment_id)
    opened = await client.post(f"/a/{token}/queue")
    assert opened.status_code == 303 and opened.headers["location"] == "/hang-doi", opened.text
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/hang-doi" in cookie
    assert "Secure" not in cookie  # the test site is plain http


def listed(page: str) -> list[str]:
    return re.findall(r'name="b" value="([0-9a-f-]{36})"', page)


async def bulk(client, ids, outcome: str, comment: str = "", own: dict | None = None, **filters) -> str:
    """The list's form, then the one confirmation's: the answer page."""
    form = {"b": [str(i) for i in ids], "outcome": outcome, "comment": comment, **filters}
    confirm = await client.post("/hang-doi/xac-nhan", data=form)
    assert confirm.status_code == 200, confirm.text
    assert listed(confirm.text) == [str(i) for i in ids]  # the titles and the count, nothing decided yet
    assert f"({len(ids)} bước)" in confirm.text
    extra = {f"c-{i}": text for i, text in (own or {}).items()}
    done = await client.post("/hang-doi/quyet-dinh", data={**form, **extra})
    assert done.status_code == 200, done.text
    return done.text


def ticked(page: str) -> list[str]:
    return re.findall(r'name="b" value="([0-9a-f-]{36})" id="b[0-9]+" checked>', page)


def results(page: str) -> list[str]:
    return re.findall(r'<span class="pill (?:done|fail)">([^<]+)</span>', page)


async def channels_of(database, request_ids) -> list[str]:
    async with database.sessions() as session:
        rows = (
            await session.execute(
                select(AuditEvent.data).where(
                    AuditEvent.action == "decision.recorded", AuditEvent.entity_id.in_([str(r) for r in request_ids])
                )
            )
        ).scalars()
        return [row["channel"] for row in rows]
