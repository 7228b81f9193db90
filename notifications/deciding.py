"""A decision from any of the three ways an official decides (the page's link, the queue, a
reply to the email) with the emails it causes, in the caller's transaction: the one place the
three share, so that each way differs only in how it answers a refusal."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings
from approvals.routing.decisions import DecisionResult, Queued, decide
from approvals.statuses import Outcome
from notifications.emails import Emails
from notifications.outbox import Thread


async def decide_and_tell(
    session: AsyncSession,
    *,
    emails: Emails,
    settings: Settings,
    outcome: Outcome,
    comment: str,
    now: dt.datetime,
    token: str | None = None,
    reply_token: str | None = None,
    message_id: str | None = None,
    queued: Queued | None = None,
    thread: Thread | None = None,
) -> DecisionResult:
    """`approvals.routing.decisions.decide` by exactly one of `token`, `reply_token` or `queued`,
    then its receipts, notes and wake-ups queued (`Emails.decided`) in the same session; a reply's
    `thread` threads its receipt under it."""
    result = await decide(
        session,
        token=token,
        reply_token=reply_token,
        message_id=message_id,
        queued=queued,
        outcome=outcome,
        comment=comment,
        now=now,
        plan=emails.plan,
        secret=settings.link_secret_bytes(),
        link_ttl=dt.timedelta(days=settings.link_ttl_days),
    )
    await emails.decided(session, result, at=now, thread=thread)
    return result
