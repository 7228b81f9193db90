"""The official's queue (issue 23, "One queue per official"), in process on both backends: opened
from a live link by a POST, every stage kind that asks a decision listed and decided in bulk (each
step its own decision, audit channel "queue", receipt), the filters, one confirmation, each step
answered for, a double submit deciding nothing twice, and the threats: a lapsed, forged or
tampered session, another official's link, another official's steps, a cross-site POST."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pytest
from sqlalchemy import func, select

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Decision
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submissions import open_submission
from approvals.tokens import derive_token, queue_link_token, queue_session_token
from notifications.models import OutboxMessage
from service.queue_session import COOKIE
from tests.api.conftest import live_token

STARTS = dt.date(2026, 1, 15)
MAX_PAGE_BYTES = 30 * 1024


async def _cycle(database, kind: str = "annual"):
    async with database.transaction() as session:
        return await steps.get_or_create_cycle(
            session, kind=kind, period=f"t-{uuid.uuid4().hex[:12]}", starts_on=STARTS
        )


async def _open(database, settings, cycle, stage_id: str, subject: str = "", *, days_late: int = 0) -> uuid.UUID:
    """A stage's branch opened with its approvers asked (as `route` asks them once it is submitted)."""
    now = utcnow()
    async with database.transaction() as session:
        opened = await steps.open_request(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id=stage_id,
            subject=subject,
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=now,
        )
        if days_late:
            opened.request.due_at = now - dt.timedelta(days=days_late)
    return opened.request.id


async def _submitted(client, database, settings, cycle, stage_id: str, form: dict) -> uuid.UUID:
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


async def _pending(database, request_id, official: str) -> uuid.UUID:
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


async def _snapshot(database) -> dict:
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


async def _session_from(client, database, settings, assignment_id) -> None:
    token = await live_token(database, settings, assignment_id)
    opened = await client.post(f"/a/{token}/queue")
    assert opened.status_code == 303 and opened.headers["location"] == "/hang-doi", opened.text
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/hang-doi" in cookie
    assert "Secure" not in cookie  # the test site is plain http


def _listed(page: str) -> list[str]:
    return re.findall(r'name="b" value="([0-9a-f-]{36})"', page)


async def _bulk(client, ids, outcome: str, comment: str = "", own: dict | None = None, **filters) -> str:
    """The list's form, then the one confirmation's: the answer page."""
    form = {"b": [str(i) for i in ids], "outcome": outcome, "comment": comment, **filters}
    confirm = await client.post("/hang-doi/xac-nhan", data=form)
    assert confirm.status_code == 200, confirm.text
    assert _listed(confirm.text) == [str(i) for i in ids]  # the titles and the count, nothing decided yet
    assert f"({len(ids)} bước)" in confirm.text
    extra = {f"c-{i}": text for i, text in (own or {}).items()}
    done = await client.post("/hang-doi/quyet-dinh", data={**form, **extra})
    assert done.status_code == 200, done.text
    return done.text


def _ticked(page: str) -> list[str]:
    return re.findall(r'name="b" value="([0-9a-f-]{36})" id="b[0-9]+" checked>', page)


def _results(page: str) -> list[str]:
    return re.findall(r'<span class="pill (?:done|fail)">([^<]+)</span>', page)


async def _channels(database, request_ids) -> list[str]:
    async with database.sessions() as session:
        rows = (
            await session.execute(
                select(AuditEvent.data).where(
                    AuditEvent.action == "decision.recorded", AuditEvent.entity_id.in_([str(r) for r in request_ids])
                )
            )
        ).scalars()
        return [row["channel"] for row in rows]


async def test_every_stage_kind_that_asks_a_decision_is_listed_and_decided_in_bulk(client, database, settings):
    cycle = await _cycle(database)
    # The orientation (an approval, by the DCST's director), the Board's guidance (acknowledged by
    # the lead agency's director), the materials (a submission's review), an outlet's plan (a
    # fan-out branch: its head, then the lead agency's director), the budget (submitted through
    # its form), three units' annual reports and the consolidated report (the DOST's director).
    orientation = await _open(database, settings, cycle, "dic_direction")
    guidance = await _open(database, settings, cycle, "propaganda_guidance")
    materials = await _open(database, settings, cycle, "materials")
    outlet = await _open(database, settings, cycle, "outlet_plans", "provincial_web_portal")
    budget = await _submitted(
        client, database, settings, cycle, "finance_allocation", {"text": "Dự toán", "amount": "1.500.000.000"}
    )
    reports = [await _open(database, settings, cycle, "annual_report", unit) for unit in ("dof", "doj", "doh")]
    consolidated = await _open(database, settings, cycle, "consolidated_report")

    # The DCST's director: the orientation.
    await _session_from(client, database, settings, await _pending(database, orientation, "dcst_director"))
    page = await client.get(f"/hang-doi?cycle={cycle.id}")
    assert page.status_code == 200 and "Việc chờ đồng chí" in page.text
    assert _listed(page.text) == [str(await _pending(database, orientation, "dcst_director"))]
    assert _results(await _bulk(client, _listed(page.text), "approve", cycle=str(cycle.id))) == ["Đã ghi nhận"]

    # The DoF's director: the materials and the budget, in one confirmation.
    await _session_from(client, database, settings, await _pending(database, budget, "dof_director"))
    ids = _listed((await client.get(f"/hang-doi?cycle={cycle.id}")).text)
    assert sorted(ids) == sorted(
        [
            str(await _pending(database, materials, "dof_director")),
            str(await _pending(database, budget, "dof_director")),
        ]
    )
    assert _results(await _bulk(client, ids, "approve", cycle=str(cycle.id))) == ["Đã ghi nhận"] * 2

    # The portal's head approves its outlet's plan: then the lead agency's director is asked.
    await _session_from(client, database, settings, await _pending(database, outlet, "portal_head"))
    ids = _listed((await client.get(f"/hang-doi?cycle={cycle.id}")).text)
    assert ids == [str(await _pending(database, outlet, "portal_head"))]
    assert _results(await _bulk(client, ids, "approve", cycle=str(cycle.id))) == ["Đã ghi nhận"]

    # The DOST's director: the guidance (acknowledged), the outlet's plan, the reports, the
    # consolidated report; a session from one link lists them all.
    await _session_from(client, database, settings, await _pending(database, reports[0], "dost_director"))
    page = (await client.get(f"/hang-doi?cycle={cycle.id}")).text
    expected = [guidance, outlet, *reports, consolidated]
    assert sorted(_listed(page)) == sorted([str(await _pending(database, r, "dost_director")) for r in expected])
    assert "Tiếp nhận hoặc đề nghị làm rõ, không từ chối" in page  # the guidance's group says so
    answer = await _bulk(client, _listed(page), "approve", "Thống nhất.", cycle=str(cycle.id))
    assert _results(answer) == ["Đã ghi nhận"] * 6

    every = [orientation, materials, budget, outlet, guidance, *reports, consolidated]
    async with database.sessions() as session:
        statuses = dict(
            (
                await session.execute(
                    select(ApprovalRequest.id, ApprovalRequest.status).where(ApprovalRequest.id.in_(every))
                )
            ).all()
        )
        decided = list((await session.execute(select(Decision.id).where(Decision.request_id.in_(every)))).scalars())
        receipts = set(
            (
                await session.execute(
                    select(OutboxMessage.idempotency_key).where(OutboxMessage.idempotency_key.like("receipt:%"))
                )
            ).scalars()
        )
    assert set(statuses.values()) == {"approved"}, statuses
    assert len(decided) == 10 and {f"receipt:{d}" for d in decided} - receipts == set()  # a receipt each
    channels = await _channels(database, every)
    assert channels == ["queue"] * 10  # the outlet's plan twice: its head, then the lead agency's director


async def test_filters_select_all_one_confirmation_and_comments(client, database, settings):
    cycle = await _cycle(database)
    late = [await _open(database, settings, cycle, "annual_report", u, days_late=2) for u in ("dof", "doj")]
    on_time = [await _open(database, settings, cycle, "annual_report", u) for u in ("doh", "dofa")]
    guidance = await _open(database, settings, cycle, "propaganda_guidance")
    await _session_from(client, database, settings, await _pending(database, late[0], "dost_director"))

    # Filters: the cycle, the stage, the unit, overdue.
    base = f"/hang-doi?cycle={cycle.id}"
    assert len(_listed((await client.get(base)).text)) == 5
    assert len(_listed((await client.get(base + "&stage=annual_report")).text)) == 4
    assert _listed((await client.get(base + "&unit=doh")).text) == [
        str(await _pending(database, on_time[0], "dost_director"))
    ]
    overdue = (await client.get(base + "&overdue=1")).text
    assert sorted(_listed(overdue)) == sorted([str(await _pending(database, r, "dost_director")) for r in late])
    assert "Quá hạn" in overdue
    # "Select all in this filter": every step shown is ticked; nothing else.
    everything = (await client.get(base + "&stage=annual_report&chon=tat-ca")).text
    assert len(_ticked(everything)) == 4
    before = await _snapshot(database)
    assert await _snapshot(database) == before

    # Rejecting asks for a comment: a step without one (shared or its own) decides nothing.
    ids = [str(await _pending(database, r, "dost_director")) for r in late]
    form = {"b": ids, "outcome": "reject", "comment": ""}
    assert (await client.post("/hang-doi/xac-nhan", data=form)).status_code == 200
    refused = await client.post("/hang-doi/quyet-dinh", data={**form, f"c-{ids[0]}": "Thiếu số liệu."})
    assert refused.status_code == 422 and "Vui lòng nhập ý kiến" in refused.text
    assert await _snapshot(database) == before
    # A step acknowledged is never rejected: the confirmation is refused, nothing decided.
    with_guidance = [*ids, str(await _pending(database, guidance, "dost_director"))]
    refused = await client.post("/hang-doi/xac-nhan", data={"b": with_guidance, "outcome": "reject", "comment": "x"})
    assert refused.status_code == 422 and "không thể từ chối" in refused.text
    assert _ticked(refused.text) == with_guidance  # the selection kept
    assert await _snapshot(database) == before

    # Sent back, each with the shared comment and its own.
    answer = await _bulk(
        client, ids, "request_changes", "Bổ sung số liệu.", own={ids[0]: "Thiếu phụ lục."}, cycle=str(cycle.id)
    )
    assert _results(answer) == ["Đã ghi nhận"] * 2
    async with database.sessions() as session:
        comments = dict(
            (
                await session.execute(
                    select(Decision.assignment_id, Decision.comment).where(
                        Decision.assignment_id.in_(map(uuid.UUID, ids))
                    )
                )
            ).all()
        )
    assert comments == {uuid.UUID(ids[0]): "Bổ sung số liệu.\n\nThiếu phụ lục.", uuid.UUID(ids[1]): "Bổ sung số liệu."}


async def test_a_double_submit_decides_nothing_twice_and_each_step_is_answered_for(client, database, settings):
    cycle = await _cycle(database)
    reports = [await _open(database, settings, cycle, "annual_report", u) for u in ("dof", "doj", "doh")]
    await _session_from(client, database, settings, await _pending(database, reports[0], "dost_director"))
    ids = [str(await _pending(database, r, "dost_director")) for r in reports]
    # One of them is decided on its own page first: the bulk decision answers it "already decided".
    token = await live_token(database, settings, uuid.UUID(ids[2]))
    assert (await client.post(f"/a/{token}", data={"outcome": "approve"})).status_code == 200

    form = {"b": ids, "outcome": "approve", "comment": ""}
    first = await client.post("/hang-doi/quyet-dinh", data=form)
    assert _results(first.text) == ["Đã ghi nhận", "Đã ghi nhận", "Đã có quyết định trước đó"]
    after = await _snapshot(database)
    second = await client.post("/hang-doi/quyet-dinh", data=form)  # the same form sent again
    assert _results(second.text) == ["Đã có quyết định trước đó"] * 3
    assert await _snapshot(database) == after
    assert await _channels(database, reports) == ["queue", "queue", "link"] or sorted(
        await _channels(database, reports)
    ) == ["link", "queue", "queue"]


async def test_threats_change_nothing(client, app, database, settings):
    cycle = await _cycle(database)
    report = await _open(database, settings, cycle, "annual_report", "dof")
    orientation = await _open(database, settings, cycle, "dic_direction")
    theirs = await _pending(database, report, "dost_director")
    mine = await _pending(database, orientation, "dcst_director")
    secret = settings.link_secret_bytes()
    before = await _snapshot(database)
    form = {"b": [str(theirs)], "outcome": "approve", "comment": ""}

    # No session, a lapsed one, a forged one, a tampered one: the same answer, nothing shown or changed.
    lapsed = queue_session_token(secret, "dost_director", int(time.time()) - 1)
    forged = queue_session_token(b"another key of at least thirty-two bytes", "dost_director", int(time.time()) + 600)
    genuine = queue_session_token(secret, "dcst_director", int(time.time()) + 600)
    tampered = genuine.replace(genuine.split(".")[0], queue_session_token(secret, "dost_director", 0).split(".")[0])
    for cookie in (None, lapsed, forged, tampered):
        client.cookies.clear()
        if cookie:
            client.cookies.set(COOKIE, cookie, domain="kehoach.test", path="/hang-doi")
        page = await client.get("/hang-doi")
        assert page.status_code == 401 and "Phiên làm việc đã hết hạn" in page.text
        assert str(theirs) not in page.text
        for path in ("/hang-doi/xac-nhan", "/hang-doi/quyet-dinh"):
            answer = await client.post(path, data=form)
            assert answer.status_code == 401 and "Phiên làm việc đã hết hạn" in answer.text
    assert await _snapshot(database) == before

    # A session made from another official's link shows only that official's steps ...
    client.cookies.clear()
    await _session_from(client, database, settings, mine)
    page = (await client.get(f"/hang-doi?cycle={cycle.id}")).text
    assert _listed(page) == [str(mine)] and str(theirs) not in page
    # ... and another official's step sent to it is answered "not yours", nothing decided, not named.
    answer = await client.post("/hang-doi/quyet-dinh", data=form)
    assert answer.status_code == 200 and _results(answer.text) == ["Không thuộc việc của đồng chí"]
    assert "Một bước không có trong danh sách của đồng chí" in answer.text
    unknown = await client.post("/hang-doi/quyet-dinh", data={**form, "b": [str(uuid.uuid4())]})
    assert _results(unknown.text) == ["Không thuộc việc của đồng chí"]
    confirm = await client.post("/hang-doi/xac-nhan", data=form)  # not offered for confirmation either
    assert confirm.status_code == 422 and str(theirs) not in confirm.text
    assert await _snapshot(database) == before

    # A cross-site POST: refused, with or without a live session, and no session is made from a link.
    for path in ("/hang-doi/xac-nhan", "/hang-doi/quyet-dinh"):
        for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
            refused = await client.post(path, data={**form, "b": [str(mine)]}, headers=headers)
            assert refused.status_code == 403
    client.cookies.clear()
    token = await live_token(database, settings, mine)
    refused = await client.post(f"/a/{token}/queue", headers={"origin": "https://evil.example"})
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    # A GET of the queue from a link makes nothing; a dead link makes no session.
    assert (await client.get(f"/a/{token}/queue")).status_code == 404
    dead = await client.post(f"/a/{'A' * 43}/queue")
    assert dead.status_code == 404 and "set-cookie" not in dead.headers
    assert await _snapshot(database) == before


async def test_the_digest_queue_link_shows_a_button_and_its_post_opens_the_queue(client, database, settings):
    cycle = await _cycle(database)
    report = await _open(database, settings, cycle, "annual_report", "dof")
    secret = settings.link_secret_bytes()
    link = queue_link_token(secret, "dost_director", int(time.time()) + 3600)
    before = await _snapshot(database)
    for method in ("GET", "HEAD"):
        page = await client.request(method, f"/q/{link}")
        assert page.status_code == 200 and "set-cookie" not in page.headers
        assert page.headers["cache-control"] == "no-store"
    assert 'method="post"' in (await client.get(f"/q/{link}")).text
    opened = await client.post(f"/q/{link}")
    assert opened.status_code == 303 and COOKIE in opened.headers["set-cookie"]
    assert (
        str(await _pending(database, report, "dost_director")) in (await client.get(f"/hang-doi?cycle={cycle.id}")).text
    )
    assert await _snapshot(database) == before
    client.cookies.clear()
    # An expired or tampered queue link: the invalid-link page, no session.
    for bad in (queue_link_token(secret, "dost_director", int(time.time()) - 1), link[:-2] + "AA", link + "x"):
        for method in ("get", "post"):
            answer = await getattr(client, method)(f"/q/{bad}")
            assert answer.status_code == 404 and "set-cookie" not in answer.headers


async def test_fifty_steps_make_a_light_page(client, database, settings):
    plan = load_plan(settings.plan_file)
    stage = next(s for s in plan.cycle("annual").stages if s.id == "annual_report")
    units = plan.branches(stage, dt.date(2026, 3, 1))[:50]
    cycle = await _cycle(database)
    opened = [await _open(database, settings, cycle, "annual_report", unit) for unit in units]
    await _session_from(client, database, settings, await _pending(database, opened[0], "dost_director"))
    page = await client.get(f"/hang-doi?cycle={cycle.id}&chon=tat-ca")
    assert page.status_code == 200 and len(_listed(page.text)) == 50
    print(f"queue page with 50 steps: {len(page.content)} bytes")
    assert len(page.content) <= MAX_PAGE_BYTES, len(page.content)
    assert "<script" not in page.text and "<link" not in page.text and "<img" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("language", ["en"])
async def test_the_queue_in_english(client, database, settings, language):
    cycle = await _cycle(database)
    report = await _open(database, settings, cycle, "annual_report", "dof")
    await _session_from(client, database, settings, await _pending(database, report, "dost_director"))
    page = await client.get(f"/hang-doi?cycle={cycle.id}&lang={language}")
    assert page.status_code == 200 and "Your pending steps" in page.text and "Select all in this filter" in page.text
