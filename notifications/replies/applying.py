"""Applying one emailed reply, exactly once, through the same decision code as the page.

`apply_reply` takes the raw message as received and the address it was delivered to (the reply
address, `duyet+<token>@<reply domain>`), and in ONE transaction:

1. checks the gates in the issue's order, all before anything changes: the token (one of our reply
   addresses, naming an assignment whose link is live, on a step still open); the sender (the From
   address is the approver's own in the plan, or that of an official holding a live delegation for
   them that day, by the directory's own rules); the authentication (DMARC, or DKIM aligned with
   From, as a trusted receiving host recorded it); the message not automatic; then the answer
   read from the reply's own text (quotes, then answers);
2. on success, decides with `approvals.routing.decisions.decide(reply_token=…)` and queues what the
   decision causes with `Emails.decided`, exactly as the page's POST does (the receipt says what
   was understood: "Đã ghi nhận: Đồng ý", threaded under the reply: `notifications.replies.threads`);
3. on a failed gate, changes nothing but its own row, and answers the sender once (threaded
   under the reply), saying why,
   with the link to decide on the page only when the sender is the approver (or a live delegate);
   an automatic message is answered with nothing, nor is a reply with no usable From, nor one
   from our own addresses;
4. writes the reply's `inbound_reply` row, keyed by its Message-ID (the SHA-256 of the message
   when it has none): a second delivery, or a second receiver at once, loses on that unique key,
   rolls back and applies nothing, answers nothing.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import logging
import uuid
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.clock.deadlines import local_day
from approvals.config import Settings
from approvals.db import Database, table_of
from approvals.errors import InvalidInput, InvalidLink, Refused
from approvals.models import ApprovalRequest, Assignment
from approvals.people.directory import acting_for, delegations_in_force
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.routing.link_views import REPLY_VIEW
from approvals.routing.steps import AlreadyDecided
from approvals.statuses import AssignmentStatus, Outcome, RequestStatus
from approvals.tokens import NotAReplyAddress, hash_reply_token, reply_token_of
from approvals.wording.reply_answers import ReplyAnswer, Step
from notifications.deciding import decide_and_tell
from notifications.emails import Emails
from notifications.models import InboundReply, ReplyHandling
from notifications.outbox import Thread
from notifications.replies.answers import UnreadableReply, read_answer
from notifications.replies.authentication import authenticate
from notifications.replies.automatic import automatic_reason
from notifications.replies.quotes import reply_text
from notifications.replies.threads import reply_thread

log = logging.getLogger("kehoach.replies")

MAX_MESSAGE_ID = 255  # the column's length: a longer Message-ID is kept as its SHA-256
_INSERT = insert(table_of(InboundReply.__table__))
# The step a reply address names, read without the link's rules (they are checked here, one by
# one, to say which failed) and without a lock (`decide` takes it).
_NAMED = REPLY_VIEW


@dataclass(frozen=True)
class ReplyOutcome:
    """What became of one reply, for the log and the receiving role."""

    handling: ReplyHandling
    message_id: str
    answered: bool  # an answer to the sender was queued
    detail: str = ""  # why, in words for the log
    request_id: uuid.UUID | None = None  # the step the reply named, if its token named one
    outcome: Outcome | None = None  # the decision applied (handling "applied")


@dataclass(frozen=True)
class _Handled:
    """What the gates and the decision made of a reply, before its row is written."""

    handling: ReplyHandling
    detail: str
    reason: str = ""  # the answer's catalogue key
    step: Step | None = None
    may_decide: bool = False  # the sender is the approver or their live delegate: the answer has the link
    outcome: Outcome | None = None


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def message_id_of(message: EmailMessage, raw: bytes) -> str:
    """The reply's Message-ID as it came (angle brackets kept), or 'sha256:<hex>' of the raw
    message when it has none, or one longer than the column."""
    found = str(message.get("Message-ID", "") or "").strip()
    if found and len(found) <= MAX_MESSAGE_ID:
        return found
    source = found.encode() if found else raw
    return f"sha256:{hashlib.sha256(source).hexdigest()}"


def sender_of(message: EmailMessage) -> Address | None:
    """The one From address (display name set aside), or None for no From or several."""
    try:
        addresses: list[Address] = [address for header in message.get_all("From", []) for address in header.addresses]
    except (AttributeError, TypeError, ValueError):  # a From the parser could not read
        return None
    if len(addresses) != 1 or not addresses[0].addr_spec or "@" not in addresses[0].addr_spec:
        return None
    return addresses[0]


async def apply_reply(
    db: Database,
    raw: bytes,
    *,
    now: dt.datetime,
    plan: Plan,
    settings: Settings,
    emails: Emails,
    recipient_address: str,
) -> ReplyOutcome:
    """Apply one reply as received (its bytes, and the address it was delivered to), once."""
    message = parse(raw)
    message_id = message_id_of(message, raw)
    async with db.reads() as session:
        seen = (await session.execute(select(InboundReply.id).where(InboundReply.message_id == message_id))).first()
    if seen is not None:
        return ReplyOutcome(ReplyHandling.duplicate, message_id, answered=False, detail="seen before")
    sender = sender_of(message)
    from_address = sender.addr_spec.lower() if sender is not None else ""
    try:
        async with db.transaction() as session:
            thread = await reply_thread(session, message, message_id)
            token_hash, handled = await _handle(
                session,
                message,
                message_id,
                now=now,
                plan=plan,
                settings=settings,
                emails=emails,
                to=recipient_address,
                thread=thread,
            )
            answered = await _answer(
                session, message, message_id, handled, sender=sender, settings=settings, emails=emails, thread=thread
            )
            await session.execute(
                _INSERT,
                {
                    "id": uuid.uuid4(),
                    "message_id": message_id,
                    "reply_token_hash": token_hash,
                    "from_address": from_address[:320],
                    "received_at": now,
                    "outcome": handled.handling.value,
                    "detail": handled.detail[:1000],
                    "answered": answered,
                },
            )
    except IntegrityError:
        # Another receiver applied this same message first: everything here was rolled back.
        async with db.reads() as session:
            if (await session.execute(select(InboundReply.id).where(InboundReply.message_id == message_id))).first():
                return ReplyOutcome(ReplyHandling.duplicate, message_id, answered=False, detail="applied elsewhere")
        raise
    outcome = ReplyOutcome(
        handled.handling,
        message_id,
        answered=answered,
        detail=handled.detail,
        request_id=handled.step.request.id if handled.step else None,
        outcome=handled.outcome,
    )
    log.info(
        "reply %s from %s to %s: %s (%s)%s",
        message_id,
        from_address or "-",
        recipient_address or "-",
        outcome.handling.value,
        outcome.detail,
        ", answered" if answered else "",
    )
    return outcome


async def _handle(
    session: AsyncSession,
    message: EmailMessage,
    message_id: str,
    *,
    now: dt.datetime,
    plan: Plan,
    settings: Settings,
    emails: Emails,
    to: str,
    thread: Thread | None,
) -> tuple[str | None, _Handled]:
    """The gates in order, then the decision; (the token's hash, what became of the reply)."""
    try:
        token = reply_token_of(to, local_part=settings.reply_local_part, domain=settings.reply_domain)
    except NotAReplyAddress as exc:
        return None, _Handled(ReplyHandling.bad_token, str(exc), "reply.bad_token")
    token_hash = hash_reply_token(token)
    found = (await session.execute(_NAMED, {"digest": token_hash})).first()
    if found is None:
        return token_hash, _Handled(ReplyHandling.bad_token, "the token names no live assignment", "reply.bad_token")
    assignment, request, cycle = found
    step = Step(request, cycle, assignment)
    closed = _closed(assignment, request, now)
    if closed is not None:
        return token_hash, _Handled(closed, f"assignment {assignment.status}, request {request.status}", step=step)

    sender = sender_of(message)
    acting = await _acting(session, plan, assignment, request, now)
    if sender is None or sender.addr_spec.lower() not in {str(o.email).lower() for o in acting}:
        detail = f"From {sender.addr_spec if sender else '(none)'} may not decide for {assignment.official_id}"
        return token_hash, _Handled(ReplyHandling.not_the_approver, detail, "reply.not_the_approver", step)
    verdict = authenticate(message, trusted_authserv_ids=settings.trusted_authserv_ids)
    if not verdict.passed:
        return token_hash, _Handled(
            ReplyHandling.not_authenticated, verdict.reason, "reply.not_authenticated", step, may_decide=True
        )
    automatic = automatic_reason(message)
    if automatic is not None:
        return token_hash, _Handled(ReplyHandling.automatic, automatic, step=step, may_decide=True)
    try:
        answer = read_answer(reply_text(message))
    except UnreadableReply as exc:
        return token_hash, _Handled(ReplyHandling.unreadable, str(exc), exc.message_key, step, may_decide=True)

    try:
        async with session.begin_nested():  # a refusal after the first write leaves nothing of it
            await decide_and_tell(
                session,
                emails=emails,
                settings=settings,
                reply_token=token,
                message_id=message_id,
                outcome=answer.outcome,
                comment=answer.comment,
                now=now,
                thread=thread,
            )
    except (AlreadyDecided, InvalidLink, InvalidInput, Refused) as exc:
        for row in (assignment, request, cycle):
            await session.refresh(row)  # as they are after the rollback to the savepoint
        refusal = _refusal(exc)
        return token_hash, _Handled(
            refusal, str(exc) or type(exc).__name__, f"reply.{refusal.value}", step, isinstance(exc, InvalidInput)
        )
    return token_hash, _Handled(ReplyHandling.applied, f"{answer.keyword}", step=step, outcome=answer.outcome)


def _closed(assignment: Assignment, request: ApprovalRequest, now: dt.datetime) -> ReplyHandling | None:
    """Why the step a live token names takes no decision from it, or None (it is open)."""
    if assignment.status == AssignmentStatus.decided.value:
        return ReplyHandling.already_decided
    if request.status != RequestStatus.pending.value or assignment.status != AssignmentStatus.pending.value:
        return ReplyHandling.closed_step
    if assignment.expires_at <= now:  # the reply address expires with the link
        return ReplyHandling.bad_token
    return None


def _refusal(exc: Exception) -> ReplyHandling:
    if isinstance(exc, AlreadyDecided):
        return ReplyHandling.already_decided
    if isinstance(exc, InvalidLink):  # closed between the gates and the lock
        return ReplyHandling.closed_step
    return ReplyHandling.refused


async def _acting(
    session: AsyncSession, plan: Plan, assignment: Assignment, request: ApprovalRequest, now: dt.datetime
) -> list[Official]:
    """Whose address may decide this assignment today: its official, and their live delegates."""
    return acting_for(
        plan,
        assignment.official_id,
        role=assignment.role,
        on=local_day(plan, now),
        delegations=await delegations_in_force(session, plan),
        requester=request.requested_by,
    )


_REASONS = {
    ReplyHandling.bad_token: "reply.bad_token",
    ReplyHandling.closed_step: "reply.closed_step",
    ReplyHandling.already_decided: "reply.already_decided",
}


async def _answer(
    session: AsyncSession,
    message: EmailMessage,
    message_id: str,
    handled: _Handled,
    *,
    sender: Address | None,
    settings: Settings,
    emails: Emails,
    thread: Thread | None,
) -> bool:
    """Queue the one answer a reply that was not applied gets; False for none: an applied reply
    (its receipt answers it), an automatic message (whatever gate it failed), a reply with no
    usable From, or one from our own addresses."""
    if handled.handling is ReplyHandling.applied or sender is None or automatic_reason(message) is not None:
        return False
    address = sender.addr_spec.lower()
    if address == settings.mail_from.lower() or address.rpartition("@")[2] == settings.reply_domain:
        return False
    known = next((o for o in emails.plan.officials if str(o.email).lower() == address), None)
    answer = ReplyAnswer(
        key=f"reply_answer:{hashlib.sha256(message_id.encode()).hexdigest()[:40]}",
        name=known.name if known else (sender.display_name or address),
        email=address,
        language=known.language.value if known else settings.default_language,
        reason=handled.reason or _REASONS.get(handled.handling, "reply.closed_step"),
        step=handled.step,
        with_link=handled.may_decide,
    )
    return await emails.reply_answer(session, answer, thread=thread) > 0
