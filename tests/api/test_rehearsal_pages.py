"""Every email and page of a rehearsal says it is one (issue 22): "[Diễn tập]" before the
subject, a banner atop the text and the HTML, and the step's due time on the rehearsal's own
calendar (29 November for the annual report, though the wall clock says minutes from now). For
each kind of stage the shipped plan has: its first email (the form link, or for an approval the
decision link) and the page it opens."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from sqlalchemy import select

from approvals.db import utcnow
from approvals.plan import load_plan
from approvals.routing import steps
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from service.rehearsal.forms import read_form
from tests.api.conftest import approver_token
from tests.api.rehearsed_steps import STAGES, approval_token, open_rehearsed_step

# In the official's language: the consolidation's coordinator reads English.
PREFIX = {"vi": "[Diễn tập] ", "en": "[Rehearsal] "}
BANNER = {"vi": "DIỄN TẬP: thư này thuộc một đợt diễn tập", "en": "REHEARSAL: this email belongs to a rehearsal"}
PAGE_BANNER = {"vi": "DIỄN TẬP: đây là một đợt diễn tập", "en": "REHEARSAL: this is a rehearsal of the plan"}


@pytest.mark.parametrize(("cycle_kind", "stage_id", "kind", "unit", "due"), STAGES, ids=[s[2] for s in STAGES])
async def test_a_rehearsals_emails_and_pages_say_so(client, database, settings, cycle_kind, stage_id, kind, unit, due):
    cycle, path, message, before = await open_rehearsed_step(database, settings, cycle_kind, stage_id, kind, unit)
    language = "en" if message.subject.startswith(PREFIX["en"]) else "vi"
    assert message.subject.startswith(PREFIX[language]), message.subject
    assert message.text_body.startswith(BANNER[language]) and BANNER[language] in html.unescape(message.html_body)
    page = html.unescape((await client.get(path)).text)
    assert PAGE_BANNER["vi"] in page or PAGE_BANNER["en"] in page
    if due is not None:  # on the rehearsal's calendar, not the wall clock's (December 2026)
        day = dt.datetime.strptime(due, "%d/%m/%Y")
        shown = f"23:59 ngày {due}" if language == "vi" else f"{day:%d %b %Y}, 23:59"
        assert shown in message.text_body and shown in page, shown

    # Acted on: the receipts, outcomes and closings it sends say so too, dated on its calendar.
    if kind != "approval":
        form = read_form((await client.get(path)).text)
        data = {**form.inputs, **{n: held or "Nội dung diễn tập" for n, held in form.boxes.items() if n != "links"}}
        answer = await client.post(path, data={**data, "amount": "900.000.000"} if "amount" in form.inputs else data)
        assert answer.status_code == 200, answer.text[:300]
        path = f"/a/{await approver_token(database, settings, cycle.id, stage_id, unit)}"
    answer = await client.post(path, data={"outcome": "approve", "comment": ""})
    assert answer.status_code == 200, answer.text[:300]
    async with database.sessions() as session:
        sent = [m for m in (await session.execute(select(OutboxMessage))).scalars() if m.id not in before]
    kinds = {m.kind for m in sent}
    assert "receipt" in kinds, kinds
    for m in sent:
        assert m.subject.startswith((PREFIX["vi"], PREFIX["en"])), (m.kind, m.subject)
        assert "/2026" not in m.text_body and " 2026," not in m.text_body, (m.kind, m.text_body)  # no wall date


async def test_a_real_cycles_emails_and_pages_carry_no_banner(client, database, settings):
    """The same email for a cycle that is not a rehearsal: no prefix, no banner (so the checks
    above could fail)."""
    plan = load_plan(settings.plan_file)
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="problem_escalation", period="2081-real", starts_on=dt.date(2081, 1, 15)
        )
        before = set((await session.execute(select(OutboxMessage.id))).scalars())
        opened = await steps.open_request(
            session,
            plan=plan,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="ppc_resolution",
            subject="",
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=utcnow(),
        )
        await Emails.of(plan, settings, Renderer()).approval_links(
            session, opened.request, cycle, opened.new_assignments
        )
        path = f"/a/{await approval_token(settings, session, opened)}"
        (message,) = [m for m in (await session.execute(select(OutboxMessage))).scalars() if m.id not in before]
    assert "Diễn tập" not in message.subject and "DIỄN TẬP" not in message.text_body + message.html_body
    assert "DIỄN TẬP" not in (await client.get(path)).text
