"""Shared by the tests of applying replies (issue 23): a step of the shipped plan opened and its
request emailed through the real dispatcher to the recording SMTP server; a reply to it written
as a mail client writes one (to the Reply-To it carried, In-Reply-To, a Gmail-style quote, the
trusted MX's Authentication-Results); what the database and the mailbox hold after."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import select

from approvals.config import PACKAGED_PLAN, Settings
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Cycle, Decision
from approvals.plan import load_plan
from approvals.routing import steps
from notifications.emails import Emails
from notifications.models import InboundReply, MessageStatus, OutboxMessage
from notifications.render import Renderer
from notifications.replies.applying import ReplyOutcome, apply_reply
from service.wiring import make_dispatcher
from tests.support.smtp import Received, RecordingSmtpServer

PLAN = load_plan(PACKAGED_PLAN)
REPLY_DOMAIN = "reply.lang-son.example"
MX = "mx.lang-son.example"  # the province's MX: its Authentication-Results are trusted
SECRET = secrets.token_urlsafe(48)
RENDERER = Renderer()


def settings_for(smtp: RecordingSmtpServer) -> Settings:
    return Settings(
        link_secret=SECRET,
        reply_domain=REPLY_DOMAIN,
        reply_trusted_authserv_ids=f"{MX}, other-mx.lang-son.example",
        smtp_port=smtp.port,
        public_base_url="https://kehoach.lang-son.example",
    )


@dataclass
class Mailroom:
    """One private database, the recording SMTP server and the settings `kehoach` runs with."""

    db: Database
    smtp: RecordingSmtpServer
    settings: Settings

    @property
    def emails(self) -> Emails:
        return Emails.of(PLAN, self.settings, RENDERER)

    async def open(
        self, stage_id: str, *, cycle_kind: str = "annual", subject: str = "", data: dict | None = None
    ) -> ApprovalRequest:
        """A step opened as the run opens it, its approvers' request emails queued with it."""
        async with self.db.transaction() as session:
            cycle = await steps.get_or_create_cycle(
                session, kind=cycle_kind, period=f"r-{uuid.uuid4().hex[:10]}", starts_on=dt.date(2026, 1, 15)
            )
            opened = await steps.open_request(
                session,
                plan=PLAN,
                secret=self.settings.link_secret_bytes(),
                cycle=cycle,
                stage_id=stage_id,
                subject=subject,
                waiter_ref=None,
                link_ttl=dt.timedelta(days=30),
                now=utcnow(),
                data=data,
            )
            await self.emails.approval_links(session, opened.request, cycle, opened.new_assignments)
        return opened.request

    async def deliver(self) -> list[tuple[str, Received]]:
        """Send everything queued with the dispatcher `kehoach dispatch` runs: (kind, email as received)."""
        async with self.db.sessions() as session:
            queued = (
                await session.execute(
                    select(OutboxMessage.kind, OutboxMessage.message_id).where(
                        OutboxMessage.status == MessageStatus.queued.value
                    )
                )
            ).all()
        dispatcher = make_dispatcher(self.settings, self.db)
        sent = 0
        while count := await dispatcher.run_once():
            sent += count
        assert sent == len(queued)
        return [
            (kind, self.smtp.wait_for(lambda r, m=message_id: r.message["Message-ID"] == m, timeout=10))
            for kind, message_id in queued
        ]

    async def request_email(self, request: ApprovalRequest, official_id: str, *, kind: str = "approval_request"):
        """The email asking the official to decide the step, as they received it (sent now if still queued)."""
        await self.deliver()
        async with self.db.sessions() as session:
            assignment = (
                await session.execute(
                    select(Assignment).where(Assignment.request_id == request.id, Assignment.official_id == official_id)
                )
            ).scalar_one()
            key = f"{kind}:{assignment.id}:{assignment.token_generation}"
            message_id = (
                await session.execute(select(OutboxMessage.message_id).where(OutboxMessage.idempotency_key == key))
            ).scalar_one()
        return self.smtp.wait_for(lambda r: r.message["Message-ID"] == message_id, timeout=10).message

    async def apply(self, raw: bytes, request_email: EmailMessage, **overrides) -> ReplyOutcome:
        return await apply_reply(
            self.db,
            raw,
            now=overrides.pop("now", utcnow()),
            plan=PLAN,
            settings=self.settings,
            emails=self.emails,
            recipient_address=overrides.pop("to", str(request_email["Reply-To"])),
        )

    async def decisions(self, request_id: uuid.UUID) -> list[Decision]:
        async with self.db.sessions() as session:
            return list((await session.execute(select(Decision).where(Decision.request_id == request_id))).scalars())

    async def audit(self, request_id: uuid.UUID) -> list[AuditEvent]:
        async with self.db.sessions() as session:
            return list(
                (
                    await session.execute(
                        select(AuditEvent).where(
                            AuditEvent.entity_id == str(request_id), AuditEvent.action == "decision.recorded"
                        )
                    )
                ).scalars()
            )

    async def inbound(self) -> list[InboundReply]:
        async with self.db.sessions() as session:
            return list((await session.execute(select(InboundReply).order_by(InboundReply.received_at))).scalars())

    async def inbound_of(self, message_id: str) -> list[InboundReply]:
        async with self.db.sessions() as session:
            found = await session.execute(select(InboundReply).where(InboundReply.message_id == message_id))
            return list(found.scalars())

    async def outbox_kinds(self) -> list[str]:
        async with self.db.sessions() as session:
            return list(
                (await session.execute(select(OutboxMessage.kind).order_by(OutboxMessage.created_at))).scalars()
            )

    async def assignments(self, request_id: uuid.UUID) -> list[Assignment]:
        async with self.db.sessions() as session:
            return list(
                (await session.execute(select(Assignment).where(Assignment.request_id == request_id))).scalars()
            )

    async def cycle_of(self, request: ApprovalRequest) -> Cycle:
        async with self.db.sessions() as session:
            cycle = await session.get(Cycle, request.cycle_id)
        assert cycle is not None
        return cycle


def reply(
    request_email: EmailMessage,
    first_lines: str,
    *,
    sender: str,
    name: str = "Đồng chí",
    message_id: str | None = None,
    authserv_id: str = MX,
    authenticated: bool = True,
    extra: dict[str, str] | None = None,
) -> bytes:
    """A reply as Gmail writes one: to the Reply-To, threaded, the request quoted under a
    Vietnamese attribution line, with the MX's Authentication-Results on top."""
    domain = sender.rpartition("@")[2]
    message = EmailMessage()
    result = "pass" if authenticated else "fail"
    message["Authentication-Results"] = (
        f"{authserv_id}; dkim={result} header.d={domain} header.s=s1; spf=pass smtp.mailfrom={domain};"
        f" dmarc={result} (p=REJECT) header.from={domain}"
    )
    message["From"] = f"{name} <{sender}>"
    message["To"] = str(request_email["Reply-To"])
    message["Subject"] = f"Re: {request_email['Subject']}"
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = message_id or make_msgid(domain="mail.gmail.com")
    message["In-Reply-To"] = str(request_email["Message-ID"])
    message["References"] = str(request_email["Message-ID"])
    for header, value in (extra or {}).items():
        del message[header]
        message[header] = value
    quoted = "\n".join(f"> {line}" for line in request_email.get_body(("plain",)).get_content().splitlines())
    ours = request_email["From"].addresses[0].addr_spec
    attribution = f"Vào Th 2, 7 thg 12, 2026 vào lúc 09:15 Hệ thống kehoach <{ours}> đã viết:"
    message.set_content(f"{first_lines}\n\n{attribution}\n\n{quoted}\n")
    return message.as_bytes()


def message_id_of(raw: bytes) -> str:
    return str(message_from_bytes(raw, policy=policy.default)["Message-ID"])
