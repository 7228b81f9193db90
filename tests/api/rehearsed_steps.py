"""A step of each kind the shipped plan has, opened in a rehearsed cycle in process, with its
first email queued (tests/api/test_rehearsal_pages.py, tests/service/test_rehearsal_officials.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from approvals.db import utcnow
from approvals.models import Cycle
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submissions import open_submission
from approvals.tokens import derive_token
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.support.paces import REHEARSED, Pace

# (cycle kind, stage, its kind, the branch's unit, its due day on the rehearsal's calendar)
STAGES = [
    ("annual", "dic_direction", "submission", "", "29/01/2081"),
    ("annual", "outlet_plans", "fan_out", "lang_son_newspaper_radio_tv", "31/03/2081"),
    ("annual", "finance_allocation", "budget", "", "15/04/2081"),
    ("annual", "annual_report", "report", "dost", "29/11/2081"),
    ("annual", "consolidated_report", "consolidation", "", "14/12/2081"),
    ("problem_escalation", "ppc_resolution", "approval", "", None),
]


async def open_rehearsed_step(
    database,
    settings,
    cycle_kind: str,
    stage_id: str,
    kind: str,
    unit: str,
    *,
    pace: Pace = REHEARSED,
    period: str = "2081",
) -> tuple[Cycle, str, OutboxMessage, set]:
    """The step opened as the flow's task opens it, in the cycle of that kind for `period` (made,
    and set to `pace` from now, where missing); the cycle, the path its emailed link opens, the
    email, and the outbox rows there were before."""
    plan = load_plan(settings.plan_file)
    period = f"{period}-{kind}" if cycle_kind != "annual" else period
    emails = Emails.of(plan, settings, Renderer())
    async with database.transaction() as session:
        cycle = (
            await session.execute(
                select(steps.Cycle).where(steps.Cycle.kind == cycle_kind, steps.Cycle.period == period)
            )
        ).scalar() or await steps.get_or_create_cycle(
            session, kind=cycle_kind, period=period, starts_on=dt.date(2081, 1, 15)
        )
        pace.mark(cycle, cycle.starts_on)
        cycle.rehearsal_began = utcnow()
        before = set((await session.execute(select(OutboxMessage.id))).scalars())
        if kind == "approval":
            opened = await steps.open_request(
                session,
                plan=plan,
                secret=settings.link_secret_bytes(),
                cycle=cycle,
                stage_id=stage_id,
                subject=unit,
                waiter_ref=None,
                link_ttl=dt.timedelta(days=30),
                now=utcnow(),
            )
            await emails.approval_links(session, opened.request, cycle, opened.new_assignments)
            path = f"/a/{await approval_token(settings, session, opened)}"
        else:
            opened = await open_submission(
                session,
                plan=plan,
                secret=settings.link_secret_bytes(),
                cycle=cycle,
                stage_id=stage_id,
                subject=unit,
                waiter_ref=None,
                now=utcnow(),
                link_ttl=dt.timedelta(days=30),
            )
            await emails.asked(session, opened.opened.request, cycle, opened.asked)
            path = f"/s/{derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)}"
        (message,) = [m for m in (await session.execute(select(OutboxMessage))).scalars() if m.id not in before]
    return cycle, path, message, before


async def approval_token(settings, session, opened) -> str:
    """The decision link token of the one assignment `opened` made."""
    (assignment,) = [n.assignment for n in opened.new_assignments]
    await session.flush()
    return derive_token(settings.link_secret_bytes(), assignment.id, assignment.token_generation)
