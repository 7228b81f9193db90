"""The official's queue (issue 23, "One queue per official"), in process on both backends: opened
from a live link by a POST, every stage kind that asks a decision listed and decided in bulk (each
step its own decision, audit channel "queue", receipt), the filters, one confirmation, each step
answered for, a double submit deciding nothing twice, and the threats: a lapsed, forged or
tampered session, another official's link, another official's steps, a cross-site POST."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from sqlalchemy import select

from approvals.models import ApprovalRequest, Decision
from approvals.plan import load_plan
from approvals.tokens import queue_link_token, queue_session_token
from notifications.models import OutboxMessage
from service.queue_session import COOKIE
from tests.api.conftest import live_token
from tests.api.queue_steps import (
    MAX_PAGE_BYTES,
    asked_of,
    bulk,
    channels_of,
    listed,
    new_cycle,
    open_asked,
    results,
    session_from,
    snapshot,
    submitted,
    ticked,
)


async def test_every_stage_kind_that_asks_a_decision_is_listed_and_decided_in_bulk(client, database, settings):
    cycle = await new_cycle(database)
    # The orientation (an approval, by the DCST's director), the Board's guidance (acknowledged by
    # the lead agency's director), the materials (a submission's review), an outlet's plan (a
    # fan-out branch: its head, then the lead agency's director), the budget (submitted through
    # its form), three units' annual reports and the consolidated report (the DOST's director).
    orientation = await open_asked(database, settings, cycle, "dic_direction")
    guidance = await open_asked(database, settings, cycle, "propaganda_guidance")
    materials = await open_asked(database, settings, cycle, "materials")
    outlet = await open_asked(database, settings, cycle, "outlet_plans", "provincial_web_portal")
    budget = await submitted(
        client, database, settings, cycle, "finance_allocation", {"text": "Dự toán", "amount": "1.500.000.000"}
    )
    reports = [await open_asked(database, settings, cycle, "annual_report", unit) for unit in ("dof", "doj", "doh")]
    consolidated = await open_asked(database, settings, cycle, "consolidated_report")

    # The DCST's director: the orientation.
    await session_from(client, database, settings, await asked_of(database, orientation, "dcst_director"))
    page = await client.get(f"/hang-doi?cycle={cycle.id}")
    assert page.status_code == 200 and "Việc chờ đồng chí" in page.text
    assert listed(page.text) == [str(await asked_of(database, orientation, "dcst_director"))]
    assert results(await bulk(client, listed(page.text), "approve", cycle=str(cycle.id))) == ["Đã ghi nhận"]

    # The DoF's director: the materials and the budget, in one confirmation.
    await session_from(client, database, settings, await asked_of(database, budget, "dof_director"))
    ids = listed((await client.get(f"/hang-doi?cycle={cycle.id}")).text)
    assert sorted(ids) == sorted(
        [
            str(await asked_of(database, materials, "dof_director")),
            str(await asked_of(database, budget, "dof_director")),
        ]
    )
    assert results(await bulk(client, ids, "approve", cycle=str(cycle.id))) == ["Đã ghi nhận"] * 2

    # The portal's head approves its outlet's plan: then the lead agency's director is asked.
    await session_from(client, database, settings, await asked_of(database, outlet, "portal_head"))
    ids = listed((await client.get(f"/hang-doi?cycle={cycle.id}")).text)
    assert ids == [str(await asked_of(database, outlet, "portal_head"))]
    assert results(await bulk(client, ids, "approve", cycle=str(cycle.id))) == ["Đã ghi nhận"]

    # The DOST's director: the guidance (acknowledged), the outlet's plan, the reports, the
    # consolidated report; a session from one link lists them all.
    await session_from(client, database, settings, await asked_of(database, reports[0], "dost_director"))
    page = (await client.get(f"/hang-doi?cycle={cycle.id}")).text
    expected = [guidance, outlet, *reports, consolidated]
    assert sorted(listed(page)) == sorted([str(await asked_of(database, r, "dost_director")) for r in expected])
    assert "Tiếp nhận hoặc đề nghị làm rõ, không từ chối" in page  # the guidance's group says so
    answer = await bulk(client, listed(page), "approve", "Thống nhất.", cycle=str(cycle.id))
    assert results(answer) == ["Đã ghi nhận"] * 6

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
    channels = await channels_of(database, every)
    assert channels == ["queue"] * 10  # the outlet's plan twice: its head, then the lead agency's director


async def test_filters_select_all_one_confirmation_and_comments(client, database, settings):
    cycle = await new_cycle(database)
    late = [await open_asked(database, settings, cycle, "annual_report", u, days_late=2) for u in ("dof", "doj")]
    on_time = [await open_asked(database, settings, cycle, "annual_report", u) for u in ("doh", "dofa")]
    guidance = await open_asked(database, settings, cycle, "propaganda_guidance")
    await session_from(client, database, settings, await asked_of(database, late[0], "dost_director"))

    # Filters: the cycle, the stage, the unit, overdue.
    base = f"/hang-doi?cycle={cycle.id}"
    assert len(listed((await client.get(base)).text)) == 5
    assert len(listed((await client.get(base + "&stage=annual_report")).text)) == 4
    assert listed((await client.get(base + "&unit=doh")).text) == [
        str(await asked_of(database, on_time[0], "dost_director"))
    ]
    overdue = (await client.get(base + "&overdue=1")).text
    assert sorted(listed(overdue)) == sorted([str(await asked_of(database, r, "dost_director")) for r in late])
    assert "Quá hạn" in overdue
    # "Select all in this filter": every step shown is ticked; nothing else.
    everything = (await client.get(base + "&stage=annual_report&chon=tat-ca")).text
    assert len(ticked(everything)) == 4
    before = await snapshot(database)
    assert await snapshot(database) == before

    # Rejecting asks for a comment: a step without one (shared or its own) decides nothing.
    ids = [str(await asked_of(database, r, "dost_director")) for r in late]
    form = {"b": ids, "outcome": "reject", "comment": ""}
    assert (await client.post("/hang-doi/xac-nhan", data=form)).status_code == 200
    refused = await client.post("/hang-doi/quyet-dinh", data={**form, f"c-{ids[0]}": "Thiếu số liệu."})
    assert refused.status_code == 422 and "Vui lòng nhập ý kiến" in refused.text
    assert await snapshot(database) == before
    # A step acknowledged is never rejected: the confirmation is refused, nothing decided.
    with_guidance = [*ids, str(await asked_of(database, guidance, "dost_director"))]
    refused = await client.post("/hang-doi/xac-nhan", data={"b": with_guidance, "outcome": "reject", "comment": "x"})
    assert refused.status_code == 422 and "không thể từ chối" in refused.text
    assert ticked(refused.text) == with_guidance  # the selection kept
    assert await snapshot(database) == before

    # Sent back, each with the shared comment and its own.
    answer = await bulk(
        client, ids, "request_changes", "Bổ sung số liệu.", own={ids[0]: "Thiếu phụ lục."}, cycle=str(cycle.id)
    )
    assert results(answer) == ["Đã ghi nhận"] * 2
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
    cycle = await new_cycle(database)
    reports = [await open_asked(database, settings, cycle, "annual_report", u) for u in ("dof", "doj", "doh")]
    await session_from(client, database, settings, await asked_of(database, reports[0], "dost_director"))
    ids = [str(await asked_of(database, r, "dost_director")) for r in reports]
    # One of them is decided on its own page first: the bulk decision answers it "already decided".
    token = await live_token(database, settings, uuid.UUID(ids[2]))
    assert (await client.post(f"/a/{token}", data={"outcome": "approve"})).status_code == 200

    form = {"b": ids, "outcome": "approve", "comment": ""}
    first = await client.post("/hang-doi/quyet-dinh", data=form)
    assert results(first.text) == ["Đã ghi nhận", "Đã ghi nhận", "Đã có quyết định trước đó"]
    after = await snapshot(database)
    second = await client.post("/hang-doi/quyet-dinh", data=form)  # the same form sent again
    assert results(second.text) == ["Đã có quyết định trước đó"] * 3
    assert await snapshot(database) == after
    assert await channels_of(database, reports) == ["queue", "queue", "link"] or sorted(
        await channels_of(database, reports)
    ) == ["link", "queue", "queue"]


async def test_threats_change_nothing(client, app, database, settings):
    cycle = await new_cycle(database)
    report = await open_asked(database, settings, cycle, "annual_report", "dof")
    orientation = await open_asked(database, settings, cycle, "dic_direction")
    theirs = await asked_of(database, report, "dost_director")
    mine = await asked_of(database, orientation, "dcst_director")
    secret = settings.link_secret_bytes()
    before = await snapshot(database)
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
    assert await snapshot(database) == before

    # A session made from another official's link shows only that official's steps ...
    client.cookies.clear()
    await session_from(client, database, settings, mine)
    page = (await client.get(f"/hang-doi?cycle={cycle.id}")).text
    assert listed(page) == [str(mine)] and str(theirs) not in page
    # ... and another official's step sent to it is answered "not yours", nothing decided, not named.
    answer = await client.post("/hang-doi/quyet-dinh", data=form)
    assert answer.status_code == 200 and results(answer.text) == ["Không thuộc việc của đồng chí"]
    assert "Một bước không có trong danh sách của đồng chí" in answer.text
    unknown = await client.post("/hang-doi/quyet-dinh", data={**form, "b": [str(uuid.uuid4())]})
    assert results(unknown.text) == ["Không thuộc việc của đồng chí"]
    confirm = await client.post("/hang-doi/xac-nhan", data=form)  # not offered for confirmation either
    assert confirm.status_code == 422 and str(theirs) not in confirm.text
    assert await snapshot(database) == before

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
    assert await snapshot(database) == before


async def test_the_digest_queue_link_shows_a_button_and_its_post_opens_the_queue(client, database, settings):
    cycle = await new_cycle(database)
    report = await open_asked(database, settings, cycle, "annual_report", "dof")
    secret = settings.link_secret_bytes()
    link = queue_link_token(secret, "dost_director", int(time.time()) + 3600)
    before = await snapshot(database)
    for method in ("GET", "HEAD"):
        page = await client.request(method, f"/q/{link}")
        assert page.status_code == 200 and "set-cookie" not in page.headers
        assert page.headers["cache-control"] == "no-store"
    assert 'method="post"' in (await client.get(f"/q/{link}")).text
    opened = await client.post(f"/q/{link}")
    assert opened.status_code == 303 and COOKIE in opened.headers["set-cookie"]
    assert (
        str(await asked_of(database, report, "dost_director")) in (await client.get(f"/hang-doi?cycle={cycle.id}")).text
    )
    assert await snapshot(database) == before
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
    cycle = await new_cycle(database)
    opened = [await open_asked(database, settings, cycle, "annual_report", unit) for unit in units]
    await session_from(client, database, settings, await asked_of(database, opened[0], "dost_director"))
    page = await client.get(f"/hang-doi?cycle={cycle.id}&chon=tat-ca")
    assert page.status_code == 200 and len(listed(page.text)) == 50
    print(f"queue page with 50 steps: {len(page.content)} bytes")
    assert len(page.content) <= MAX_PAGE_BYTES, len(page.content)
    assert "<script" not in page.text and "<link" not in page.text and "<img" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("language", ["en"])
async def test_the_queue_in_english(client, database, settings, language):
    cycle = await new_cycle(database)
    report = await open_asked(database, settings, cycle, "annual_report", "dof")
    await session_from(client, database, settings, await asked_of(database, report, "dost_director"))
    page = await client.get(f"/hang-doi?cycle={cycle.id}&lang={language}")
    assert page.status_code == 200 and "Your pending steps" in page.text and "Select all in this filter" in page.text
