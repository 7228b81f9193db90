"""What kehoach emails, in one place: for each thing that happens in the plan, the emails it
sends and to whom, queued in the caller's transaction (the dispatcher sends them after the
commit, each once: every message has a key, and a key is queued once).

The flows, the sweep, the pages and the API all queue through `Emails`; none of them builds
an outbox row itself. What an email says is `approvals.wording.presentation` (the words and the people)
and `notifications/templates` (the layout); how it is queued is `notifications.links`.
An email that asks an official to act (a request, a reminder, an overdue notice) is also
queued, in the same transaction, on the official's first phone channel, Zalo or SMS, when they
have one (`notifications.channel_outbox`); the email goes as before, the channel of record.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings
from approvals.coordination import Acted
from approvals.db import utcnow
from approvals.models import ApprovalRequest, Cycle
from approvals.plan import Plan
from approvals.routing.decisions import Channel, DecisionResult
from approvals.routing.steps import NewAssignment
from approvals.routing.submissions import SUBMISSION_LINK, SubmissionAsked, SubmissionUnrouted
from approvals.statuses import Outcome
from approvals.tokens import APPROVAL_LINK, REPLY_ADDRESS, REPORT_LINK
from approvals.wording.channel_alerts import ChannelAlert, channel_alert_messages
from approvals.wording.digests import daily_digest_message
from approvals.wording.issued_report import report_issued_messages
from approvals.wording.message_types import ClosingMessage, LinkMessage, PlainMessage
from approvals.wording.messages import (
    closed_messages,
    cycle_attention_messages,
    cycle_digest_messages,
    delivery_failure_messages,
    link_messages,
    outcome_message,
    overdue_messages,
    receipt_message,
    replies_unread_messages,
    submission_message,
    unrouted_messages,
)
from approvals.wording.presentation import official_name
from approvals.wording.reply_answers import ReplyAnswer, reply_answer_message
from notifications.channel_outbox import queue_phone_messages
from notifications.composing import placeholder
from notifications.links import (
    queue_closing_messages,
    queue_digest_messages,
    queue_link_messages,
    queue_plain_messages,
)
from notifications.models import OutboxMessage
from notifications.outbox import MAX_ATTACHMENT_BYTES, Attachment, Thread, queued_keys
from notifications.render import Renderer

if TYPE_CHECKING:  # types only: the report's stack (pyHanko, the fonts) is imported where a report is issued
    from approvals import consolidated
    from approvals.running.digests import DailyDigest
    from approvals.running.sweep import OverdueNotice


@dataclass(frozen=True)
class Emails:
    """Everything kehoach sends, for one plan and one configuration. Each method queues in the
    session it is given and returns how many emails it queued (0 for ones queued before)."""

    plan: Plan
    renderer: Renderer
    domain: str  # Message-IDs and calendar UIDs are made in it
    organizer: tuple[str, str]  # (name, address) calendar invites come from
    base_url: str  # of the links to pages that need no token (a request, the dashboard)
    # Whether an email that asks for a decision gets its reply address as Reply-To (a reply domain is set).
    replies: bool = False
    # The phone channels the deployment turned on ("zalo", "sms"): an official's others are skipped.
    phone_channels: frozenset[str] = frozenset()

    @classmethod
    def of(cls, plan: Plan, settings: Settings, renderer: Renderer) -> Emails:
        return cls(
            plan=plan,
            renderer=renderer,
            domain=settings.mail_domain,
            organizer=settings.organizer,
            base_url=settings.public_base_url,
            replies=bool(settings.reply_domain),
            phone_channels=frozenset(
                c for c, on in (("zalo", settings.zalo_enabled), ("sms", settings.sms_enabled)) if on
            ),
        )

    # Asking someone to act ---------------------------------------------------------------------

    async def approval_links(
        self,
        session: AsyncSession,
        request: ApprovalRequest,
        cycle: Cycle,
        notify: Sequence[NewAssignment],
        *,
        kind: str = "approval_request",
    ) -> int:
        """Each approver newly asked gets their personal link, with the deadline in their calendar,
        and (when replies are on) their reply address as Reply-To, to decide by answering;
        `kind` "reminder" or "escalation" for the sweep's and a coordinator's."""
        messages = link_messages(self.plan, request, cycle, notify, kind=kind)
        await queue_phone_messages(session, self.plan, messages, link=APPROVAL_LINK, on=self.phone_channels)
        return await queue_link_messages(
            session,
            renderer=self.renderer,
            link_name=APPROVAL_LINK,
            reply_name=REPLY_ADDRESS if self.replies else None,
            organizer=self.organizer,
            domain=self.domain,
            messages=messages,
        )

    async def submission_link(
        self,
        session: AsyncSession,
        request: ApprovalRequest,
        cycle: Cycle,
        asked: SubmissionAsked,
        *,
        reminder: int | str = 0,
    ) -> int:
        """The acting agency's submitter gets the step's form link: first, again after changes,
        or (with `reminder`: the sweep's n-th, or a coordinator's) the same form again."""
        message = submission_message(self.plan, request, cycle, asked, reminder=reminder)
        await queue_phone_messages(session, self.plan, [message], link=SUBMISSION_LINK, on=self.phone_channels)
        return await queue_link_messages(
            session,
            renderer=self.renderer,
            link_name=SUBMISSION_LINK,
            organizer=self.organizer,
            domain=self.domain,
            messages=[message],
        )

    async def asked(
        self,
        session: AsyncSession,
        request: ApprovalRequest,
        cycle: Cycle,
        asked: SubmissionAsked | SubmissionUnrouted | None,
    ) -> int:
        """What asking for a (re)submission produced: the form link to the officer asked, or,
        when nobody could be asked, an alert to the coordinators (a step never waits on an email
        that was never sent)."""
        if isinstance(asked, SubmissionAsked):
            return await self.submission_link(session, request, cycle, asked)
        if isinstance(asked, SubmissionUnrouted):
            return await self._plain(
                session,
                unrouted_messages(self.plan, request, cycle, action=asked.action, at=utcnow(), base_url=self.base_url),
            )
        return 0

    async def coordinated(self, session: AsyncSession, acted: Acted, *, kind: str) -> int:
        """What a coordinator's action (remind, escalate, reassign) sends: a submitter reminded
        gets the same form link again (a reminder of its own, however many); approvers newly
        asked or reminded get their links."""
        if acted.submission is not None:
            return await self.submission_link(
                session, acted.request, acted.cycle, acted.submission, reminder=f"manual-{uuid.uuid4().hex[:12]}"
            )
        if not acted.notify:
            return 0
        return await self.approval_links(session, acted.request, acted.cycle, acted.notify, kind=kind)

    # A step ends -------------------------------------------------------------------------------

    async def decided(
        self, session: AsyncSession, result: DecisionResult, *, at: dt.datetime, thread: Thread | None = None
    ) -> int:
        """What a decision causes: the decider's receipt and a note to whoever the outcome spared
        (both take the deadline off their calendar); the submitter hears how the step ended (a
        request for changes reaches them as its resubmission link instead); the next approver of a
        sequence is asked. A decision made by an emailed reply gives its `thread`: the receipt
        answers that reply, threaded under it."""
        request, cycle = result.request, result.cycle
        decided_by = official_name(self.plan, result.decision.official_id)
        receipt = receipt_message(
            self.plan, request, cycle, result.decision, at=at, by_reply=result.channel is Channel.email_reply
        )
        closed = closed_messages(self.plan, request, cycle, result.closed, decided_by=decided_by, at=at)
        if thread is None:
            queued = await self._closing(session, [receipt, *closed])
        else:
            queued = await self._closing(session, [receipt], thread=thread) + await self._closing(session, closed)
        if result.settled is not None and result.settled is not Outcome.request_changes:
            queued += await self._plain(
                session,
                [
                    outcome_message(
                        self.plan,
                        request,
                        cycle,
                        decided_by=decided_by,
                        comment=result.decision.comment,
                        at=at,
                        base_url=self.base_url,
                    )
                ],
            )
        if result.asked is not None:
            queued += await self.asked(session, request, cycle, result.asked)
        if result.activated:
            queued += await self.approval_links(session, request, cycle, result.activated)
        return queued

    async def expired(
        self, session: AsyncSession, request: ApprovalRequest, cycle: Cycle, closed: Sequence[str]
    ) -> int:
        """A step that lapsed (its policy on the due time): its submitter hears how it ended, and
        the officials it had asked lose the deadline from their calendar."""
        at = request.decided_at or utcnow()
        return await self._plain(
            session,
            [outcome_message(self.plan, request, cycle, decided_by="", comment="", at=at, base_url=self.base_url)],
        ) + await self._closing(session, closed_messages(self.plan, request, cycle, closed, decided_by="", at=at))

    async def cancelled(
        self,
        session: AsyncSession,
        cycle: Cycle,
        expired: Iterable[ApprovalRequest],
        closed: dict[uuid.UUID, list[str]],
        *,
        at: dt.datetime,
    ) -> int:
        """A cycle cancelled: everyone it had asked loses the deadline from their calendar."""
        queued = 0
        for request in expired:
            queued += await self._closing(
                session, closed_messages(self.plan, request, cycle, closed.get(request.id, []), decided_by="", at=at)
            )
        return queued

    # Coordinators and superiors ----------------------------------------------------------------

    async def overdue(self, session: AsyncSession, notices: Iterable[OverdueNotice]) -> int:
        """Each stage's superior hears once of its steps past their due time."""
        messages = [message for notice in notices for message in overdue_messages(self.plan, notice)]
        await queue_phone_messages(session, self.plan, messages, on=self.phone_channels)
        return await self._plain(session, messages)

    async def cycle_attention(
        self, session: AsyncSession, cycle: Cycle, *, reason: str | None = None, detail: str | None = None
    ) -> int:
        """The coordinators' alert for a cycle that stopped and needs them (`Cycle.attention`)."""
        return await self._plain(
            session,
            cycle_attention_messages(
                self.plan,
                cycle,
                reason=reason or cycle.attention or "",  # the callers pass a cycle just marked (never neither)
                detail=detail if detail is not None else cycle.attention_detail,
                at=utcnow(),
                base_url=self.base_url,
            ),
        )

    async def cycle_digest(self, session: AsyncSession, cycle: Cycle, statuses: dict[str, str], *, event: str) -> int:
        """The coordinators' digest when a cycle starts or finishes: every stage and its status."""
        return await self._plain(
            session, cycle_digest_messages(self.plan, cycle, statuses, event=event, at=utcnow(), base_url=self.base_url)
        )

    async def delivery_failures(
        self, session: AsyncSession, failed: Sequence[OutboxMessage], *, at: dt.datetime
    ) -> int:
        """The coordinators hear of every email that could not be delivered, once per set."""
        return await self._plain(session, delivery_failure_messages(self.plan, failed, at=at, base_url=self.base_url))

    async def daily_digests(self, session: AsyncSession, digests: Iterable[DailyDigest], *, now: dt.datetime) -> int:
        """Each official with open steps hears of them once a day: every step with its link, and
        one link that opens their queue (its GET shows a button; nothing is decided from a GET).
        A digest already queued that day is neither written nor queued again."""
        messages = [daily_digest_message(self.plan, digest, now=now) for digest in digests]
        sent = await queued_keys(session, [m.key for m in messages])
        return await queue_digest_messages(
            session, renderer=self.renderer, domain=self.domain, messages=[m for m in messages if m.key not in sent]
        )

    # Replies -----------------------------------------------------------------------------------

    async def replies_unread(self, session: AsyncSession, *, mailbox: str, detail: str, at: dt.datetime) -> int:
        """The coordinators' alert that the replies' mailbox is unreachable (once a day per mailbox)."""
        return await self._plain(
            session, replies_unread_messages(self.plan, mailbox=mailbox, detail=detail, at=at, base_url=self.base_url)
        )

    async def reply_answer(self, session: AsyncSession, answer: ReplyAnswer, *, thread: Thread | None = None) -> int:
        """The one answer to an emailed reply that was not applied: why, and, only for a sender who
        may decide the step, the link to decide on the page (a placeholder, resolved as it is sent).
        It carries no Reply-To: nothing answers an answer. It is threaded under the reply (`thread`)."""
        message = reply_answer_message(
            self.plan,
            key=answer.key,
            name=answer.name,
            email=answer.email,
            language=answer.language,
            reason=answer.reason,
            step=answer.step,
            with_link=answer.with_link,
        )
        if isinstance(message, LinkMessage):
            return await queue_link_messages(
                session,
                renderer=self.renderer,
                link_name=APPROVAL_LINK,
                domain=self.domain,
                messages=[message],
                thread=thread,
            )
        return await self._plain(session, [message], thread=thread)

    # Channels besides email --------------------------------------------------------------------

    async def channel_alert(self, session: AsyncSession, alert: ChannelAlert) -> int:
        """The coordinators' alert that a channel besides email stopped (`approvals.wording.channel_alerts`:
        Zalo refused the OA's token refresh, or a provider failed every message of the last hour),
        queued once (`notifications.channels.alerts` calls it)."""
        return await self._plain(session, channel_alert_messages(self.plan, alert, base_url=self.base_url))

    # The issued report -------------------------------------------------------------------------

    async def report_issued(
        self,
        session: AsyncSession,
        *,
        cycle_id: uuid.UUID | str,
        report: consolidated.AnnualReport,
        document: consolidated.ReportDocument,
        files: Sequence[tuple[str, str, bytes]],
    ) -> int:
        """One email to each recipient agency's mailbox, in Vietnamese (the province's official
        language), with the issued report's files attached; keyed by cycle and agency. Files
        larger in all than the outbox takes are not attached: each recipient gets a download
        link of its own instead (`download`), written as the email is sent."""
        cycle = await session.get(Cycle, uuid.UUID(str(cycle_id)))
        too_large = sum(len(data) for _, _, data in files) > MAX_ATTACHMENT_BYTES
        messages = report_issued_messages(
            self.plan,
            cycle,
            cycle_id=cycle_id,
            report=report,
            document=document,
            download=(lambda agency: placeholder(REPORT_LINK, f"{cycle_id}:{agency}")) if too_large else None,
        )
        return await queue_plain_messages(
            session,
            renderer=self.renderer,
            messages=messages,
            domain=self.domain,
            attachments=[] if too_large else [Attachment(*file) for file in files],
        )

    # ---------------------------------------------------------------------------------------------

    async def _plain(
        self, session: AsyncSession, messages: Iterable[PlainMessage | None], *, thread: Thread | None = None
    ) -> int:
        return await queue_plain_messages(
            session,
            renderer=self.renderer,
            domain=self.domain,
            messages=[m for m in messages if m is not None],
            thread=thread,
        )

    async def _closing(
        self, session: AsyncSession, messages: Iterable[ClosingMessage | None], *, thread: Thread | None = None
    ) -> int:
        found = [m for m in messages if m is not None]
        return await queue_closing_messages(
            session, renderer=self.renderer, domain=self.domain, organizer=self.organizer, messages=found, thread=thread
        )
