"""The daily digest (issue 23): once a day from the plan's morning, each official with open steps
gets one email listing them, each with its own link and one link that opens the queue (written as
the email is sent); a second sweep the same day queues nothing, and nothing decides from a GET."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

from approvals.db import utcnow
from approvals.models import Decision
from approvals.plan import load_plan
from approvals.routing.submissions import SUBMISSION_LINK
from approvals.running.digests import daily_digests
from approvals.tokens import APPROVAL_LINK, QUEUE_LINK, approval_link_resolver, queue_link_resolver
from notifications.composing import PLACEHOLDER
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.api.conftest import live_token
from tests.api.queue_steps import asked_of, listed, new_cycle, open_asked


def _at_local(plan, hour: int) -> dt.datetime:
    """Today at `hour` in the plan's time zone (the steps opened now are open then)."""
    today = utcnow().astimezone(plan.tz).date()
    return dt.datetime.combine(today, dt.time(hour, 30), plan.tz).astimezone(dt.UTC)


async def _sweep_digests(database, settings, plan, now) -> int:
    async with database.transaction() as session:
        digests = await daily_digests(session, plan=plan, now=now, hour=settings.digest_hour)
        return await Emails.of(plan, settings, Renderer()).daily_digests(session, digests, now=now)


async def test_the_daily_digest_lists_the_open_steps_with_their_links_and_opens_the_queue(client, database, settings):
    plan = load_plan(settings.plan_file)
    cycle = await new_cycle(database)
    late = await open_asked(database, settings, cycle, "annual_report", "dof", days_late=1)
    on_time = await open_asked(database, settings, cycle, "annual_report", "doj")
    key = f"daily_digest:dost_director:{utcnow().astimezone(plan.tz).date().isoformat()}"

    async with database.sessions() as session:
        already = (await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))).scalar()
    if already is None:  # before the morning hour nobody hears; from it, once a day
        assert await _sweep_digests(database, settings, plan, _at_local(plan, settings.digest_hour - 1)) == 0
        assert await _sweep_digests(database, settings, plan, _at_local(plan, settings.digest_hour)) >= 1
    assert await _sweep_digests(database, settings, plan, _at_local(plan, settings.digest_hour + 1)) == 0
    async with database.sessions() as session:
        row = (await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))).scalar_one()
        decisions_before = (await session.execute(select(func.count()).select_from(Decision))).scalar_one()
    assert row.kind == "daily_digest" and row.recipients[0]["email"]
    assert "[Việc chờ đồng chí]" in row.subject
    assert "http" not in row.text_body.replace("https://", "")  # no link is written into the outbox ...
    assert "/a/" not in row.text_body and "/q/" not in row.text_body  # ... only placeholders

    # As the dispatcher writes it: each step's link opens its page, the queue link a button.
    secret = settings.link_secret_bytes()
    resolvers = {
        APPROVAL_LINK: approval_link_resolver(secret, settings.public_base_url),
        SUBMISSION_LINK: approval_link_resolver(secret, settings.public_base_url, path="s"),
        QUEUE_LINK: queue_link_resolver(secret, settings.public_base_url, ttl_seconds=settings.queue_link_hours * 3600),
    }
    text = PLACEHOLDER.sub(lambda m: resolvers[m.group(1)](m.group(2)), row.text_body)
    for request in (late, on_time):
        assignment = await asked_of(database, request, "dost_director")
        link = f"{settings.public_base_url}/a/{await live_token(database, settings, assignment)}"
        assert link in text
        assert (await client.get(link.removeprefix(settings.public_base_url))).status_code == 200
    assert "Quá hạn" in text
    [queue_link] = re.findall(r"https?://\S+/q/\S+", text)
    path = queue_link.removeprefix(settings.public_base_url)
    button = await client.get(path)
    assert button.status_code == 200 and "set-cookie" not in button.headers and 'method="post"' in button.text
    opened = await client.post(path)
    assert opened.status_code == 303
    page = await client.get(f"/hang-doi?cycle={cycle.id}")
    assert sorted(listed(page.text)) == sorted(
        [str(await asked_of(database, r, "dost_director")) for r in (late, on_time)]
    )
    async with database.sessions() as session:  # reading the email's links decided nothing
        assert (await session.execute(select(func.count()).select_from(Decision))).scalar_one() == decisions_before


async def test_a_rehearsals_steps_are_left_out_of_the_daily_digest(private_database, settings):
    """A rehearsed year passes in minutes: its steps never reach the wall clock's daily digest,
    while a real cycle's step, open at the same hour for the same official, does."""
    plan = load_plan(settings.plan_file)
    real, rehearsed = await new_cycle(private_database), await new_cycle(private_database)
    async with private_database.transaction() as session:
        cycle = await session.get(type(rehearsed), rehearsed.id)
        cycle.rehearsal_speed, cycle.rehearsal_began = 1051.2, utcnow()
    in_real = await open_asked(private_database, settings, real, "annual_report", "dof")
    in_rehearsal = await open_asked(private_database, settings, rehearsed, "annual_report", "dof")

    async with private_database.sessions() as session:
        at = _at_local(plan, settings.digest_hour)
        digests = await daily_digests(session, plan=plan, now=at, hour=settings.digest_hour)
    [director] = [d for d in digests if d.official.id == "dost_director"]
    listed_requests = {step.request.id for step in director.steps}
    assert in_real in listed_requests and in_rehearsal not in listed_requests
